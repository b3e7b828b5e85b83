"""Indexing MultiVENT 2.0's published layout: 1,100 uncompressed tar shards of 100 videos each.

    python benchmarks/video_index.py [--shards 1100] [--members 100] [--member-bytes 4096]

Synthesizes the shards (YouTube-style 11-character ids, each member with a `.info.json` beside it, as the
release has metadata) in a temporary directory, then times `video_index.build_index` three ways, each in a
fresh process: built from nothing, read back from its cache (nothing changed), and rebuilt after one shard
changed. Member contents are small random bytes: building the index reads tar headers only, so the member
size does not change the time (the data is seeked over), only the disk the benchmark needs.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import string
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ALPHABET = string.ascii_letters + string.digits + "-_"
PROBE = (
    "import sys, time; from rankvideo_cli.videos.index import build_index; t = time.perf_counter(); "
    "index = build_index(sys.argv[1]); built = time.perf_counter() - t; t = time.perf_counter(); "
    "located = [index.locate(docid) for docid in list(index.entries)] if sys.argv[2] == '1' else []; "
    "print(len(index.entries), index.built, built, time.perf_counter() - t, len(index.rebuilt_tars))"
)


def make_shards(root: Path, shards: int, members: int, member_bytes: int) -> None:
    rng = random.Random(0)
    payload = os.urandom(member_bytes)
    for number in range(1, shards + 1):
        with tarfile.open(root / f"{number:06d}.tar", "w") as archive:
            for _ in range(members):
                docid = "".join(rng.choices(ALPHABET, k=11))
                for name, data in ((f"{docid}.mp4", payload), (f"{docid}.info.json", b"{}")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))


def timed(root: Path, cache: Path, locate: bool = False) -> tuple[int, bool, float, float, float]:
    """(videos, built now, seconds in build_index, seconds locating every docid, wall seconds)."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(root), "1" if locate else "0"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "RANKVIDEO_CACHE": str(cache)},
    )
    wall = time.perf_counter() - started
    entries, built, inside, locating, rebuilt = done.stdout.split()
    assert rebuilt == "0", "a shard's cached offsets were stale"
    return int(entries), built == "True", float(inside), float(locating), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=1100)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--member-bytes", type=int, default=4096)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        root, cache = scratch / "videos", scratch / "cache"
        root.mkdir()
        started = time.perf_counter()
        make_shards(root, args.shards, args.members, args.member_bytes)
        print(f"synthesized {args.shards} shards x {args.members} videos in {time.perf_counter() - started:.1f} s")
        cases = ("build (no cache)", "from the cache", "from the cache, every docid located", "rebuild after a change")
        for label in cases:
            if label.startswith("rebuild"):
                make_shards_one = root / "000001.tar"
                os.utime(make_shards_one)  # a new mtime: the signature no longer matches
            entries, built, inside, locating, wall = timed(root, cache, locate="located" in label)
            print(
                f"{label:<36} {entries} videos, built={built}: {inside:.2f} s in build_index, "
                f"{locating:.2f} s locating (each cached member's tar header read back), {wall:.2f} s wall"
            )


if __name__ == "__main__":
    main()
