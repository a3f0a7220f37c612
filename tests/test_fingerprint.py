"""`core/fingerprint.py` and `core/staleness.py` as pure functions: what the fingerprint holds
and leaves out, and the lines that say what changed."""

from __future__ import annotations

from typing import Any

from reconciler.core.desired import intents
from reconciler.core.fingerprint import fingerprint
from reconciler.core.plan import Plan
from reconciler.core.staleness import capped, fingerprint_changes, manifests_changed
from reconciler.manifest.loader import parse_manifests
from tests.notation import guid_of, observed_from
from tests.test_cli import MANIFESTS

POLICIES = intents(parse_manifests([("m.yaml", MANIFESTS)]), None)
TAG = "zr_:home:offsite"


def hosts(nas: Any = "a b[zr_:home:offsite] #b", backup: Any = "a b[zr_:home:offsite]") -> Any:
    return {"nas": {"tank/home": nas}, "backup": {"vault/nas/tank/home": backup}}


def fp(data: Any) -> dict[str, Any]:
    return fingerprint(POLICIES, observed_from(data))


def test_versions_holds_and_guids_are_recorded() -> None:
    home = fp(hosts())["nas"]["filesystems"]["tank/home"]  # type: ignore[index]
    assert list(home["versions"]) == ["@a", "@b", "#b"]
    b = home["versions"]["@b"]
    assert b["guid"] == str(guid_of("b")) and b["holds"] == [TAG]
    assert b["createtxg"] > home["versions"]["@a"]["createtxg"]
    assert home["resume_token"] is None and "modified" not in home  # a source


def test_written_bytes_on_a_source_do_not_move_the_fingerprint() -> None:
    assert fp(hosts(nas={"versions": "a b #b", "written": 4096})) == fp(hosts(nas="a b #b"))


def test_a_write_to_a_target_moves_the_fingerprint() -> None:
    changed = fp(hosts(backup={"versions": "a b", "written": 4096}))
    assert fingerprint_changes(fp(hosts(backup="a b")), changed) == (
        "backup:vault/nas/tank/home: written to since the plan was made",
    )


def test_an_unobserved_host_is_recorded_without_its_error_text() -> None:
    one = fp({**hosts(), "backup": {"unreachable": "ssh: timeout"}})
    other = fp({**hosts(), "backup": {"unreachable": "ssh: connection refused"}})
    assert one == other and one["backup"] == {"observed": False, "filesystems": {}}


def test_each_kind_of_change_reads_as_one_line() -> None:
    before = fp(hosts())
    after = fp(hosts(nas="a b[zr_:home:offsite] #b c", backup="a' b"))
    assert fingerprint_changes(before, after) == (
        "backup:vault/nas/tank/home: hold zr_:home:offsite on @b released since the plan was made",
        "backup:vault/nas/tank/home: snapshot @a was destroyed and made again since the plan "
        "was made (another guid)",
        "nas:tank/home: snapshot @c created since the plan was made",
    )


def test_a_host_that_became_unobservable_is_one_line() -> None:
    after = fp({**hosts(), "backup": {"unreachable": "down"}})
    assert fingerprint_changes(fp(hosts()), after) == (
        "host backup cannot be observed now; it could when the plan was made",
    )
    assert fingerprint_changes(after, fp(hosts())) == (
        "host backup can be observed now; it could not when the plan was made",
    )


def test_equal_fingerprints_have_no_changes() -> None:
    assert fingerprint_changes(fp(hosts()), fp(hosts())) == ()


def test_manifests_changed_names_both_generations() -> None:
    assert manifests_changed("abc", "abc") == ()
    assert manifests_changed("abc", "def") == (
        "the manifests changed since the plan was made (generation abc, now def)",
    )


def test_capped_keeps_the_first_lines_and_counts_the_rest() -> None:
    assert capped(["a", "b", "c"], limit=2) == ("a", "b", "... and 1 more")
    assert capped(["a", "b"], limit=2) == ("a", "b")


def test_plans_made_at_other_times_differ() -> None:
    from reconciler.core.staleness import plan_changes

    assert plan_changes(Plan(now=0), Plan(now=0)) == ()
    assert plan_changes(Plan(now=0), Plan(now=60)) == (
        "now is 1970-01-01T00:00:00Z in the saved plan, 1970-01-01T00:01:00Z now",
    )
