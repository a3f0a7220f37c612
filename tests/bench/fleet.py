"""A fleet's manifests, generated: N Host documents and N Policy documents, policy i on host i
replicating to host i + 1 (the last one to host 0), as the issue describes them (issue 11,
item 5: "1,500 Hosts and 1,500 Policies, each replicating to the next host").

Every Host is reached over ssh with a port, a user, a key, options and a `zfsCommand`; every
Policy has its own filter (`tank/hI<` minus its scratch, plus one exact filesystem), a snapshot
interval or a cron schedule, a retention grid with a regex, and one target with send and receive
options and its own retention. About 1,135 bytes per host-and-policy pair, so 1 MB is 883 of
each. Used by `tests.bench.validate_bench` and by the tests of the validation's work counts.
"""

from __future__ import annotations

from pathlib import Path

MB = 1_000_000

HOST = """\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Host
metadata: {{name: h{i}, labels: {{site: dc{site}, role: storage}}}}
spec:
  transport: ssh
  ssh:
    host: h{i}.storage.dc{site}.example.org
    port: 22
    user: zrep
    identityFile: /etc/zfs-reconciler/id_ed25519
    options: [ServerAliveInterval=30, ConnectTimeout=10]
  zfsCommand: [sudo, zfs]
"""

POLICY = """\
---
apiVersion: zfs-reconciler.dev/v1alpha1
kind: Policy
metadata: {{name: p{i}, labels: {{tier: gold, site: dc{site}}}}}
spec:
  source:
    host: h{i}
    filesystems: {{"tank/h{i}<": true, "tank/h{i}/scratch<": false, "tank/db{i}": true}}
  snapshots: {{prefix: zr_, {schedule}}}
  retention:
    keep:
      - grid: "1x1h(keep=all) | 24x1h | 14x1d"
      - regex: "T000000Z$"
  replication:
    - name: offsite
      host: h{next}
      root: backup/h{i}
      protection: resumable
      initialReplication: mostRecent
      send: {{raw: true, compressed: true, largeBlocks: true}}
      receive:
        properties: {{override: {{readonly: "on", canmount: "noauto"}}, inherit: [mountpoint]}}
      retention:
        keep:
          - grid: "1x1h(keep=all) | 24x1h | 35x1d | 12x30d"
          - lastN: 3
"""


def host(i: int) -> str:
    return HOST.format(i=i, site=i % 7)


def policy(i: int, count: int) -> str:
    schedule = "interval: 15m" if i % 3 else 'cron: "*/30 * * * *"'
    return POLICY.format(i=i, next=(i + 1) % count, site=i % 7, schedule=schedule)


def pair_size(count: int) -> int:
    """The bytes of one host and one policy in a fleet of `count` (numbers of that width)."""
    return len(host(count - 1)) + len(policy(count - 1, count))


def fleet_count(size: int) -> int:
    """How many hosts (and policies) make about `size` bytes of manifests."""
    count = max(2, size // pair_size(max(2, size // 1_200)))
    while count > 2 and count * pair_size(count) > size * 1.02:
        count -= 1
    return count


def fleet_documents(count: int) -> list[str]:
    """The documents of a fleet of `count` hosts and `count` policies: every host, then every
    policy (the order of a generated inventory)."""
    return [host(i) for i in range(count)] + [policy(i, count) for i in range(count)]


def fleet_text(count: int) -> str:
    """The whole fleet in one YAML stream."""
    return "".join(fleet_documents(count))


def fleet_files(count: int, per_file: int = 20) -> list[tuple[str, str]]:
    """The fleet split in files as an operator would keep it: `hosts/hostsNNN.yaml` with
    `per_file` hosts each, `policies/policiesNNN.yaml` with `per_file` policies each."""
    files: list[tuple[str, str]] = []
    for start in range(0, count, per_file):
        stop = min(count, start + per_file)
        files.append((f"hosts/hosts{start:05d}.yaml", "".join(map(host, range(start, stop)))))
    for start in range(0, count, per_file):
        stop = min(count, start + per_file)
        text = "".join(policy(i, count) for i in range(start, stop))
        files.append((f"policies/policies{start:05d}.yaml", text))
    return files


def write_fleet(directory: Path, count: int, split: bool) -> int:
    """Write a fleet below `directory` (one `fleet.yaml`, or many files); its size in bytes."""
    files = fleet_files(count) if split else [("fleet.yaml", fleet_text(count))]
    total = 0
    for name, text in files:
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        total += len(text.encode())
    return total
