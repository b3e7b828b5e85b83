"""`rankvideo frames`: what the model sees of one video (and whether a frame cache holds it)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from rankvideo_cli.io.atomic import write_stdout
from rankvideo_cli.jobs.preflight import check_regular_input, check_writable_directory
from rankvideo_cli.videos.config import SamplingConfig


def run_frames(
    video: Path,
    config: SamplingConfig,
    *,
    as_json: bool,
    save_dir: Path | None,
    console: Console,
    frames_cache: Path | None = None,
) -> None:
    """Show what the model sees of one video under a reranker's sampling (`config`); optionally save the sampled
    frames as PNGs, and say whether a frame cache holds them."""
    check_regular_input(video, "VIDEO")
    if save_dir is not None:
        check_writable_directory(save_dir, "--save")
    if frames_cache is not None:
        from rankvideo_cli.videos.frame_cache import check_frame_cache

        check_frame_cache(frames_cache)
    # PyAV loads only once the arguments are known to be good; torch only to decode frames for --save
    from rankvideo_cli.videos.plan import describe, probe_video

    plan = probe_video(video, config)
    summary = describe(plan)
    if frames_cache is not None:
        from rankvideo_cli.videos.frame_cache import FrameCache
        from rankvideo_cli.videos.identity import content_identity

        state = FrameCache(frames_cache).state(content_identity(video), config)
        summary["frame_cache"] = {
            "status": state.status,
            "entry": str(state.path),
            "bytes": state.size_bytes,
            "detail": state.detail,
        }
    if save_dir is not None:
        from rankvideo_cli.videos.frames import sample_video, save_frames_png

        written = save_frames_png(sample_video(video, config, plan=plan), save_dir)
        summary["saved_frames"] = [str(path) for path in written]
    if as_json:
        write_stdout(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = {
        "video": summary["path"],
        "container / codec": f"{summary['container']} / {summary['codec']}",
        "frames (N, demuxed packets)": str(summary["total_frames"]),
        "fps (F, average_rate)": f"{summary['source_fps']:.6g} ({summary['average_rate']})",
        "duration": f"{summary['duration_seconds']:.3f} s",
        "rotation": f"{summary['rotation']} deg",
        "size: source -> model (HxW)": "{}x{} -> {}x{}".format(*summary["source_size"], *summary["output_size"]),
        "sampled frames": str(summary["sampled_frames"]),
        "frame indices": " ".join(map(str, summary["frame_indices"])),
        "pair timestamps": " ".join(summary["pair_labels"]),
        "video tokens": f"{summary['video_tokens']} ({summary['tokens_per_pair']} per frame pair)",
    }
    if summary["fitted"]:
        rows["video tokens"] += ": sampled smaller to fit the reranker's token budget"
    for note in summary["notes"]:
        rows.setdefault("notes", "")
        rows["notes"] += note + "; "
    if "saved_frames" in summary:
        rows["saved"] = f"{len(summary['saved_frames'])} PNGs in {save_dir}"
    if "frame_cache" in summary:
        cached = summary["frame_cache"]
        details = ", ".join(
            str(part) for part in (cached["detail"], cached["bytes"] and f"{cached['bytes']} bytes") if part
        )
        rows["frame cache"] = f"{cached['status']}{f' ({details})' if details else ''}: {cached['entry']}"
    for key, value in rows.items():
        table.add_row(key, value)
    Console(highlight=False, soft_wrap=True).print(table)
