"""Listing parser benchmark: parse a realistic `zfs list` of 1,000,000 versions and report the
best wall time of `parse_listing` and the peak RSS, and the best time of `parse_names` on the
same versions as the cheap listing gives them (`name,guid,createtxg`, the same rows' columns).

The listing is text in the exact shape of `commands.list_versions` output (OpenZFS 2.3.2,
`tests/fixtures/zfs/zfs-list-observe.txt`): 2,000 filesystems under `tank/data`, each with 500
snapshots taken by one `zfs snapshot` call every 15 minutes (so a step's createtxg and creation
are the same on every filesystem), random 64-bit GUIDs, `written`/`referenced` of a few MiB,
the newest snapshot held (`userrefs` 1), one replication cursor bookmark per filesystem (listed
after the snapshots, as zfs does), and a resume token on one filesystem. The parser gets the
bytes as the driver reads them from zfs's stdout. Run as
`python -m tests.bench.parse_bench [--filesystems N] [--snapshots N] [--repeat N]`.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import resource
import time

from reconciler.zfs.parse import parse_listing, parse_names

BASE_TIME = 1_795_600_000
STEP_SECONDS = 900
FIRST_TXG = 1_000
TXG_STEP = 7
# a real token (tests/fixtures/zfs/zfs-send-nv-token-observe-incremental.txt)
TOKEN = (
    "1-eb767a29e-f8-789c636064000310a501c49c50360710a715e5e7a69766a63040c1051d8fd9ce3b37942a00"
    "d9ec48eaf293b252934b181858a0ea30e4d3d28a534b40323c70793624f9a4ca92d462201d202f87557f493ec4"
    "15c74e1bf6b51de2b9e18024cf0996cf4bcc4d6560282e4ad62f482c2a4ecdc92c2ed1cfc8cf4d75a82a8a3732"
    "3032333034300c3130303435308882b81100f7f02609"
)


def synthetic_listing(filesystems: int, snapshots: int, seed: int = 1) -> str:
    """The text of a `zfs list -H -p -o LIST_COLUMNS ...` of the fleet described above."""
    rnd = random.Random(seed)
    steps = [
        (
            time.strftime("zr_%Y%m%dT%H%M%SZ", time.gmtime(BASE_TIME + STEP_SECONDS * i)),
            str(FIRST_TXG + TXG_STEP * i),
            str(BASE_TIME + STEP_SECONDS * i),
        )
        for i in range(snapshots)
    ]
    blocks = [_filesystem_block(rnd, number, filesystems, steps) for number in range(filesystems)]
    return "".join(blocks)


def _filesystem_block(
    rnd: random.Random, number: int, filesystems: int, steps: list[tuple[str, str, str]]
) -> str:
    """One filesystem's rows: itself, its snapshots, its bookmark (one string, so that the
    benchmark's own peak memory stays near the size of the text)."""
    filesystem = f"tank/data/fs{number:04d}"
    token = TOKEN if number == filesystems // 2 else "-"
    written, referenced = rnd.randrange(1 << 20), rnd.randrange(1 << 20, 1 << 30)
    lines = [
        f"{filesystem}\tfilesystem\t{rnd.getrandbits(64)}\t{10 + number}\t{BASE_TIME - 86400}"
        f"\t-\t{written}\t{referenced}\t{token}\t-"
    ]
    for index, (name, txg, creation) in enumerate(steps):
        written = rnd.randrange(1 << 22)
        referenced += written
        userrefs = "1" if index == len(steps) - 1 else "0"
        lines.append(
            f"{filesystem}@{name}\tsnapshot\t{rnd.getrandbits(64)}\t{txg}\t{creation}"
            f"\t{userrefs}\t{written}\t{referenced}\t-\t-"
        )
    if len(steps) >= 2:
        name, txg, creation = steps[-2]
        lines.append(
            f"{filesystem}#{name}_offsite\tbookmark\t{rnd.getrandbits(64)}\t{txg}\t{creation}"
            f"\t-\t-\t{referenced}\t-\t-"
        )
    return "\n".join(lines) + "\n"


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--filesystems", type=int, default=2000)
    parser.add_argument("--snapshots", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    output = synthetic_listing(args.filesystems, args.snapshots).encode()  # zfs's stdout
    built = time.perf_counter() - started
    gc.collect()
    rss_text = _rss_mib()  # the high-water mark so far: building the text
    timings, collections = [], []
    versions = 0
    for _ in range(args.repeat):
        started = time.perf_counter()
        listing = parse_listing(output, "bench")
        timings.append(time.perf_counter() - started)
        started = time.perf_counter()
        # the parse pauses the cyclic collector; its first walk of the new objects happens
        # when the parse re-enables it, so inside parse_s: this stays near 0
        gc.collect(0)
        collections.append(time.perf_counter() - started)
        versions = sum(len(fs.versions) for fs in listing.filesystems.values())
        del listing
        gc.collect()
    names_output = b"".join(
        b"\t".join((row[0], row[2], row[3])) + b"\n"
        for row in (line.split(b"\t") for line in output.splitlines())
    )
    names_timings = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        names = parse_names(names_output, "bench")
        names_timings.append(time.perf_counter() - started)
        del names
        gc.collect()
    print(
        json.dumps(
            {
                "filesystems": args.filesystems,
                "snapshots_per_filesystem": args.snapshots,
                "versions_parsed": versions,
                "listing_mib": round(len(output) / (1 << 20), 1),
                "build_listing_s": round(built, 2),
                "peak_rss_before_parse_mib": round(rss_text, 1),
                "parse_s": [round(t, 3) for t in timings],
                "parse_best_s": round(min(timings), 3),
                "young_collection_after_s": [round(t, 3) for t in collections],
                "names_listing_mib": round(len(names_output) / (1 << 20), 1),
                "parse_names_s": [round(t, 3) for t in names_timings],
                "parse_names_best_s": round(min(names_timings), 3),
                "peak_rss_mib": round(_rss_mib(), 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
