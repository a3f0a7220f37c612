"""`core/plan_decode.py`: the plan document read back into the typed plan, over the golden
plans, and hostile documents refused with the path of what is wrong."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.core.plan import Plan
from reconciler.core.plan_decode import PlanDecodeError, plan_from_json
from reconciler.core.planner import plan
from reconciler.core.render import dump_plan_json, plan_to_json
from reconciler.manifest.loader import load_manifests
from tests.notation import observed_from
from tests.test_golden import CASES, GOLDEN, _now


def golden_plan(case: str) -> Plan:
    folder = GOLDEN / case
    data = YAML(typ="safe").load((folder / "observed.yaml").read_text())
    manifests = load_manifests([folder / "manifests.yaml"])
    return plan(manifests, observed_from(data["hosts"]), _now(data["now"]))


def golden_document(case: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((GOLDEN / case / "plan.json").read_text())
    return document


@pytest.mark.parametrize("case", CASES)
def test_the_typed_plan_survives_a_round_trip_through_json(case: str) -> None:
    original = golden_plan(case)
    assert plan_from_json(json.loads(dump_plan_json(original))) == original


@pytest.mark.parametrize("case", CASES)
def test_the_golden_document_reads_back_to_the_same_bytes(case: str) -> None:
    document = golden_document(case)
    assert dump_plan_json(plan_from_json(document)) == (GOLDEN / case / "plan.json").read_text()


def test_every_action_kind_and_option_is_covered_by_the_golden_plans() -> None:
    kinds = {a.kind for case in CASES for a in golden_plan(case).actions}
    assert len(kinds) == 9  # every ActionKind: the round trip above exercises each of them


def _first(document: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(a for a in document["actions"] if a["kind"] == kind)


def _set(**values: Any) -> Any:
    def spoil(document: dict[str, Any]) -> Any:
        document.update(values)
        return document

    return spoil


def _in_action(kind: str | None, change: Any) -> Any:
    def spoil(document: dict[str, Any]) -> Any:
        action = document["actions"][0] if kind is None else _first(document, kind)
        change(action)
        return document

    return spoil


def _drop(key: str) -> Any:
    def spoil(document: dict[str, Any]) -> Any:
        del document[key]
        return document

    return spoil


MUTATIONS: list[tuple[str, Any, str]] = [  # what, document → spoilt document, path named
    ("not an object", lambda d: [d], ""),
    ("wrong format_version", _set(format_version=2), "format_version"),
    ("bool format_version", _set(format_version=True), "format_version"),
    ("missing actions", _drop("actions"), "missing key 'actions'"),
    ("bad now", _set(now="yesterday"), "now"),
    ("now not UTC", _set(now="2026-11-26T11:50:00+01:00"), "now"),
    ("conflicts an object", _set(conflicts={}), "conflicts"),
    ("unknown kind", _in_action(None, lambda a: a.update(kind="format_pool")), "actions[0].kind"),
    ("id a string", _in_action(None, lambda a: a.update(id="0")), "actions[0].id"),
    ("id a bool", _in_action(None, lambda a: a.update(id=False)), "actions[0].id"),
    ("id a float", _in_action(None, lambda a: a.update(id=0.5)), "actions[0].id"),
    ("reason unknown", _in_action(None, lambda a: a.update(reason="why")), "actions[0].reason"),
    ("missing message", _in_action(None, lambda a: a.pop("message")), "'message'"),
    ("depends_on strs", _in_action(None, lambda a: a.update(depends_on=["1"])), "depends_on[0]"),
    ("action a list", lambda d: {**d, "actions": [[]]}, "actions[0]"),
    (
        "send option not bool",
        _in_action("send", lambda a: a["send_options"].update(raw=1)),
        "send_options.raw",
    ),
    (
        "override pair of three",
        _in_action("send", lambda a: a["receive_options"].update(override=[["a", "b", "c"]])),
        "receive_options.override[0]",
    ),
]


@pytest.mark.parametrize(("what", "spoil", "path"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_spoilt_document_is_refused_with_the_path_of_the_fault(
    what: str, spoil: Any, path: str
) -> None:
    spoilt = spoil(copy.deepcopy(golden_document("incremental")))
    with pytest.raises(PlanDecodeError) as raised:
        plan_from_json(spoilt)
    assert path in str(raised.value), (what, str(raised.value))


def test_unknown_keys_are_ignored_as_the_format_asks() -> None:
    document = golden_document("incremental")
    document["comment"] = "added by a consumer"
    document["actions"][0]["extra"] = 1
    assert plan_from_json(document) == plan_from_json(golden_document("incremental"))


def test_plan_to_json_and_back_keeps_plan_equality() -> None:
    original = golden_plan("first_run")
    assert plan_from_json(plan_to_json(original)) == original
