"""Adoption of other tools' snapshot names (`spec.snapshots.adopt`): the name parsers, the
manifest's checks, and the planner's use of adopted snapshots (owned, pruned by retention,
incremental bases), with a property: whatever the history, no plan destroys a snapshot that is
neither the policy's own nor adopted, nor the newest snapshot common with a target unless the
same plan sends a newer one, and no plan sends a full stream while a common snapshot exists."""

from __future__ import annotations

import calendar
from datetime import UTC
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.core.desired import intents
from reconciler.core.plan import DestroyAction, SendAction
from reconciler.core.planner import plan
from reconciler.manifest.errors import ManifestErrors
from reconciler.manifest.loader import parse_manifests
from reconciler.manifest.name_schemes import LayoutError, adopted_scheme, compile_layout
from tests.notation import observed_from


def epoch(text: str) -> int:
    """`2026-12-05 13:15:33` (UTC) as seconds."""
    date, time = text.split()
    year, month, day = map(int, date.split("-"))
    hour, minute, second = map(int, time.split(":"))
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


T = epoch("2026-12-05 13:15:33")
T_MINUTE = epoch("2026-12-05 13:15:00")
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("form", "layout", "zone", "name", "expected"),
    [
        ("dense", None, UTC, "zrepl_20261205_131533_000", T),
        ("dense", None, UTC, "zrepl_20261205_131533_001", None),  # zrepl always writes _000
        ("dense", None, UTC, "zrepl_20261305_131533_000", None),  # month 13
        ("dense", None, UTC, "zrepl_20260231_131533_000", None),  # 31 February
        ("dense", None, UTC, "zrepl_20261205_131533_000x", None),
        ("dense", None, UTC, "zrepl20261205_131533_000", None),  # prefix is exact
        ("human", None, UTC, "zrepl_2026-12-05_13:15:33", T),
        ("iso-8601", None, UTC, "zrepl_2026-12-05T13:15:33.000Z", T),
        ("iso-8601", None, UTC, "zrepl_2026-12-05T13:15:33.999Z", T),  # fractions dropped
        ("iso-8601", None, UTC, "zrepl_2026-12-05T14:15:33.000_01:00", T),  # `+` written `_`
        ("iso-8601", None, UTC, "zrepl_2026-12-05T11:15:33.000-02:00", T),
        ("iso-8601", None, UTC, "zrepl_2026-12-05T11:15:33.000-24:00", None),
        ("unix-seconds", None, UTC, f"zrepl_{T}", T),
        ("unix-seconds", None, UTC, "zrepl_12x", None),
        ("unix-seconds", None, UTC, "zrepl_" + "9" * 13, None),
        ("sanoid", None, UTC, "zrepl_2026-12-05_13:15:33_hourly", T),
        ("sanoid", None, BERLIN, "zrepl_2026-12-05_14:15:33_daily", T),  # CET: UTC+1
        ("sanoid", None, BERLIN, "zrepl_2026-07-05_15:15:33_monthly", T - 153 * 86400),  # CEST
        ("sanoid", None, UTC, "zrepl_2026-12-05_13:15:33_sometimes", None),
        ("sanoid", None, UTC, "zrepl_2026-12-05_13:15:33", None),
        (None, "2006-01-02_15:04", UTC, "zrepl_2026-12-05_13:15", T_MINUTE),
        (None, "Jan _2 2006 03:04PM", UTC, "zrepl_Dec  5 2026 01:15PM", T_MINUTE),
        (None, "January 2 06 15.04.05", UTC, "zrepl_December 5 26 13.15.33", T),
        (None, "06002-1504", UTC, "zrepl_26339-1315", T_MINUTE),  # day of year 339
        (None, "Monday 2006-01-02", UTC, "zrepl_Saturday 2026-12-05", epoch("2026-12-05 0:0:0")),
        (None, "2006-01-02T15:04:05Z0700", UTC, "zrepl_2026-12-05T13:15:33Z", T),
        (None, "2006-01-02T15:04:05Z0700", UTC, "zrepl_2026-12-05T14:15:33_0100", T),
        (None, "2006-01-02T15:04:05", BERLIN, "zrepl_2026-12-05T14:15:33", T),
        (None, "2006-01-02T15:04:05.999", UTC, "zrepl_2026-12-05T13:15:33.5", T),
        (None, "2006-01-02T15:04:05.999", UTC, "zrepl_2026-12-05T13:15:33", T),
        (None, "2006-01-02 03:04PM", UTC, "zrepl_2026-12-05 13:15PM", None),  # hour 13 of 12
    ],
)
def test_adopted_names_read_back_to_their_time(
    form: str | None, layout: str | None, zone: ZoneInfo, name: str, expected: int | None
) -> None:
    assert adopted_scheme("zrepl_", form, layout, zone).time_of(name) == expected


@pytest.mark.parametrize(
    ("layout", "why"),
    [
        ("15:04:05", "no year"),
        ("2006-01 15:04", "a month and a day"),
        ("2006-01-02 MST", "zone abbreviation"),
        ("2006-01-02 2006", "year is written twice"),
        ("2006-01-02 02", "day is written twice"),
        ("2006-01-02 03:04", "without PM"),
        ("2006-01-02 15 03PM", "hour twice"),
        ("", "1 to 64"),
        ("2006-01-02" + "x" * 60, "1 to 64"),
    ],
)
def test_layouts_that_cannot_be_read_back_are_refused(layout: str, why: str) -> None:
    with pytest.raises(LayoutError, match=why):
        compile_layout(layout)


POLICY = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: nas}}
spec: {{transport: local}}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: home}}
spec:
  source: {{host: nas, filesystems: {{"tank/home<": true}}}}
  snapshots:
    prefix: zr_
    adopt:
      - {entry}
"""


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{prefix: zrepl_}", "exactly one of format and layout"),
        (
            '{prefix: zrepl_, format: dense, layout: "2006-01-02"}',
            "exactly one of format and layout",
        ),
        ("{prefix: zrepl_, format: densest}", "'dense', 'human', 'iso-8601'"),
        ('{prefix: zrepl_, layout: "2006/01/02"}', "only the characters of snapshot names"),
        ('{prefix: zrepl_, layout: "15:04"}', "no year"),
        ("{prefix: zrepl_, format: dense, timezone: Local}", "Local differs by host"),
        ("{prefix: zrepl_, format: dense, timezone: Mars/Olympus}", "unknown time zone"),
        ("{prefix: zrepl_, format: dense, timezone: ../../etc/passwd}", "unknown time zone"),
        ("{prefix: zrepl_, format: dense, timezone: zone.tab}", "unknown time zone"),
        ("{prefix: 'zrepl/', format: dense}", "valid snapshot prefix"),
        ("{prefix: zrepl_, format: dense, regex: x}", "regex"),
    ],
)
def test_bad_adopt_entries_are_one_error_each(entry: str, message: str) -> None:
    with pytest.raises(ManifestErrors) as raised:
        parse_manifests([("p.yaml", POLICY.format(entry=entry))])
    assert len(raised.value.errors) == 1
    error = raised.value.errors[0]
    assert message in str(error)
    assert "spec.snapshots.adopt[0]" in str(error)


def _other(prefix: str, filesystems: str, adopt: str = "") -> str:
    return f"""---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: other}}
spec:
  source: {{host: nas, filesystems: {{"{filesystems}": true}}}}
  snapshots: {{prefix: {prefix}{adopt}}}
"""


@pytest.mark.parametrize(
    ("other", "clash"),
    [
        (_other("zrepl_", "tank<"), "owns snapshots named 'zrepl_'..."),  # same, overlapping
        (_other("zr_", "tank<", ", adopt: [{prefix: zrepl_, format: human}]"), "adopts"),
        (_other("zrepl_hourly_", "tank<"), "whatever the filesystems"),  # nested prefixes
        (_other("zrepl_hourly_", "pool<"), "whatever the filesystems"),
        (_other("zrepl", "pool<"), "whatever the filesystems"),
        (_other("zrepl_", "pool<"), None),  # the same prefix on disjoint filesystems
        (_other("zr_", "tank<"), None),  # home's own prefix is shared: validate.py's rule
        (_other("zfs_", "tank<"), None),
    ],
)
def test_adopting_names_another_policy_owns_is_refused(other: str, clash: str | None) -> None:
    text = POLICY.format(entry="{prefix: zrepl_, format: dense}") + other
    if clash is None and "prefix: zr_}" not in other:
        assert set(parse_manifests([("p.yaml", text)]).policies) == {"home", "other"}
        return
    with pytest.raises(ManifestErrors) as raised:
        parse_manifests([("p.yaml", text)])
    message = str(raised.value)
    if clash is None:  # two own prefixes alike: the plain one-owner rule, not adoption's
        assert "both would own the same snapshots" in message and "adopt" not in message
    else:
        assert clash in message and "adopt[0].prefix" in message


def test_many_policies_adopting_one_prefix_on_disjoint_filesystems_validate() -> None:
    """The check compares all policies at once (first_overlaps), not pair by pair: 2,000
    policies adopting `zrepl_`, each on its own filesystem, load (a quadratic check took about
    20 s for 1,000)."""
    documents = [POLICY.format(entry="").split("---")[0]]
    for index in range(2000):
        documents.append(
            f"""
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: p{index}}}
spec:
  source: {{host: nas, filesystems: {{"tank/fs{index}<": true}}}}
  snapshots: {{prefix: zrepl_, adopt: [{{prefix: zrepl_, format: dense}}]}}
"""
        )
    loaded = parse_manifests([("p.yaml", "---".join(documents))])
    assert len(loaded.policies) == 2000


# --- the planner ---------------------------------------------------------------------------

MANIFESTS = """\
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: nas}}
spec: {{transport: local}}
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: home}}
spec:
  source: {{host: nas, filesystems: {{"tank/home": true}}}}
  snapshots:
    prefix: zr_
    interval: 1h
    adopt: [{{prefix: zrepl_, format: dense}}, {{prefix: autosnap_, format: sanoid}}]
  retention: {{keep: [{source_rule}]}}
  replication:
    - name: offsite
      host: nas
      root: vault
      retention: {{keep: [{target_rule}]}}
"""
NOW = epoch("2026-12-01 12:00:00")
DAY = 86400


def _name(kind: int, when: int) -> str:
    """A snapshot name of one of five shapes: own, two adopted, two foreign look-alikes."""
    import time

    stamp = time.gmtime(when)
    if kind == 0:
        return time.strftime("zr_%Y%m%dT%H%M%SZ", stamp)
    if kind == 1:
        return time.strftime("zrepl_%Y%m%d_%H%M%S_000", stamp)
    if kind == 2:
        return time.strftime("autosnap_%Y-%m-%d_%H:%M:%S_daily", stamp)
    if kind == 3:
        return time.strftime("zrepl_%Y%m%d_%H%M%S", stamp)  # no _000: not zrepl's dense
    return time.strftime("manual_%Y%m%d", stamp)


OWNED_KINDS = {0, 1, 2}

histories = st.lists(
    st.tuples(st.integers(0, 4), st.integers(1, 60 * DAY)),
    min_size=1,
    max_size=14,
    unique_by=lambda item: item[1],
)
rules = st.sampled_from(
    ['{grid: "1x1h(keep=all) | 24x1h | 7x1d"}', "{lastN: 2}", "{lastN: 1}", '{regex: "^zr_"}']
)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(
    history=histories,
    shared=st.integers(0, 14),
    source_rule=rules,
    target_rule=rules,
)
def test_plans_prune_only_owned_snapshots_and_send_incrementally_from_a_common_one(
    history: list[tuple[int, int]], shared: int, source_rule: str, target_rule: str
) -> None:
    ordered = sorted(history, key=lambda item: -item[1])  # oldest first (age descending)
    names = [_name(kind, NOW - age) for kind, age in ordered]
    owned = {name for (kind, _), name in zip(ordered, names, strict=True) if kind in OWNED_KINDS}
    on_target = names[: min(shared, len(names))]
    filesystems = {"tank/home": " ".join(names), "vault": "", "vault/tank": ""}
    if on_target:
        filesystems["vault/tank/home"] = " ".join(on_target)
    text = MANIFESTS.format(source_rule=source_rule, target_rule=target_rule)
    manifests = parse_manifests([("m.yaml", text)])
    result = plan(manifests, observed_from({"nas": filesystems}), NOW)
    newest_common = on_target[-1] if on_target else None
    sends = [a for a in result.actions if isinstance(a, SendAction)]
    for action in result.actions:
        if isinstance(action, DestroyAction):
            for version in action.versions:
                name = version.removeprefix("@")
                if version.startswith("@"):
                    assert name in owned, f"destroyed {version}, which the policy does not own"
                    # only once a send in the same plan gives the pair a newer common one
                    assert name != newest_common or sends, f"destroyed the common {version}"
    for send in sends:
        if newest_common is not None:
            assert send.from_version is not None, f"full send though @{newest_common} is common"
    assert intents(manifests)[0].adopted  # the scenario does adopt


def test_the_property_above_can_fail_when_adoption_is_dropped() -> None:
    """Without `adopt`, adopted names are foreign: nothing of them is pruned (the checks above
    would flag the opposite), and retention sees only `zr_` names."""
    names = [_name(1, NOW - age * DAY) for age in (30, 20, 10, 1)]
    observed = observed_from({"nas": {"tank/home": " ".join(names), "vault/tank": ""}})
    adopting = MANIFESTS.format(source_rule="{lastN: 1}", target_rule="{lastN: 1}")
    not_adopting = adopting.replace(
        "adopt: [{prefix: zrepl_, format: dense}, {prefix: autosnap_, format: sanoid}]", "adopt: []"
    )
    destroyed = {
        version
        for action in plan(parse_manifests([("m", adopting)]), observed, NOW).actions
        if isinstance(action, DestroyAction)
        for version in action.versions
    }
    assert destroyed == {"@" + n for n in names}  # lastN 1 keeps the new zr_ snapshot only
    kept = plan(parse_manifests([("m", not_adopting)]), observed, NOW).actions
    assert not [a for a in kept if isinstance(a, DestroyAction)]
