"""`loop/state.py`: the loop's state as JSON, whatever times it holds."""

from __future__ import annotations

import json

from reconciler.loop.state import LoopState, PolicyState, Wakeup, state_to_json


def test_times_beyond_what_a_date_can_show_are_clamped_not_fatal() -> None:
    state = LoopState(
        started=1796378400.5,
        policies={
            "far": PolicyState("far", next_wakeup=Wakeup(1e18, ("periodic resync",))),
            "past": PolicyState("past", next_wakeup=Wakeup(-1e18, ("snapshot due",))),
        },
    )
    document = json.loads(json.dumps(state_to_json(state)))
    assert document["started"] == "2026-12-04T10:00:00.500Z"
    assert document["policies"]["far"]["next_wakeup"] == {
        "at": "9999-12-31T23:59:59.000Z",
        "why": ["periodic resync"],
    }
    assert document["policies"]["past"]["next_wakeup"]["at"] == "1970-01-01T00:00:00.000Z"
    assert document["format_version"] == 1 and document["manifests_valid"] is False
