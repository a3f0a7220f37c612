"""The audit log on real OpenZFS: a pass that sends records the bytes zfs measured
(docs/audit-log.md). Hosts `src` and `dst` are the guest, as in `test_scenarios.py`.
"""

from __future__ import annotations

import json

from platform_tests.scenario import Scenario
from platform_tests.test_scenarios import policy


def test_the_audit_log_records_each_applied_action_and_the_bytes_of_a_send(
    s: Scenario,
) -> None:
    data = f"{s.src}/data"
    s.create(data, nbytes=2 << 20)
    s.policy(policy())
    s.at(0)
    audit = s.directory / "audit.jsonl"
    done = s.reconcile("--audit-log", str(audit))
    assert done.code == 0, done.stderr
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(done.results())
    (send,) = [r for r in records if r["kind"] == "send"]
    assert send["status"] == "ok" and send["host"] == "src" and send["policy"] == "data"
    assert send["action"]["target_filesystem"] == s.target(data)
    assert send["bytes"] > 1 << 20  # of the 2 MiB written (zfs measures the stream)
    assert all(r["bytes"] is None for r in records if r["kind"] != "send")
    assert len({r["plan_sha256"] for r in records}) == 1
