"""The commands over videos, no model: sample, frames, videos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rankvideo_cli.cli.params import (
    DEFAULT_RERANKER_NAME,
    FramesOfOpt,
    MultiventOpt,
    RequiredVideosOpt,
    Verbosity,
    VideoMapOpt,
    VideoPatternOpt,
    _required_videos,
    non_empty_path,
    stderr,
    user_errors,
    with_verbosity,
)
from rankvideo_cli.options import DecodeOptions, VideoSource
from rankvideo_cli.scoring.rerankers import get_reranker


@user_errors
@with_verbosity()
def sample(
    run: Annotated[
        Path, typer.Argument(help="The first-stage run the GPU jobs will rerank (- for stdin).", parser=non_empty_path)
    ],
    frames_cache: Annotated[
        Path,
        typer.Option(
            "--frames-cache",
            help="Directory of sampled frames (created; shared by array tasks).",
            parser=non_empty_path,
        ),
    ],
    videos: RequiredVideosOpt = None,
    video_pattern: VideoPatternOpt = "{docid}.mp4",
    multivent: MultiventOpt = False,
    video_map: VideoMapOpt = None,
    depth: Annotated[int, typer.Option(help="Sample the videos of the top K candidates of each query.")] = 100,
    shard: Annotated[str | None, typer.Option(help="This array task's share (auto: SLURM's).")] = None,
    decode_workers: Annotated[int | None, typer.Option(help="Decode threads (default: one per core).")] = None,
    retry_bad_videos: Annotated[
        bool, typer.Option("--retry-bad-videos", help="Try again videos the cache records as bad.")
    ] = False,
    verify: Annotated[
        bool, typer.Option("--verify", help="Decode every existing entry to check it (default: its header).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the counts as JSON on stdout.")] = False,
    reranker: FramesOfOpt = DEFAULT_RERANKER_NAME,
    *,
    verbosity: Verbosity,  # with_verbosity
) -> None:
    """Decode and sample, on CPU, every video a rerank of RUN needs, into a frame cache (no model)."""
    import json

    from rankvideo_cli.io.atomic import write_stdout
    from rankvideo_cli.jobs.sample import SampleRequest, run_sample

    request = SampleRequest(
        run_path=run,
        frames_cache=frames_cache,
        videos=_required_videos(locals()),
        depth=depth,
        shard=shard,
        decode=DecodeOptions(decode_workers=decode_workers, retry_bad_videos=retry_bad_videos),
        verify=verify,
        sampling=get_reranker(reranker.value).sampling,
    )
    with verbosity:
        result = run_sample(request, stderr)
    if as_json:
        write_stdout(json.dumps(result.as_dict(), indent=2, sort_keys=True) + "\n")


@user_errors
def frames(
    video: Annotated[Path, typer.Argument(help="A video file.", parser=non_empty_path)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    save: Annotated[
        Path | None, typer.Option(help="Also save the sampled, resized frames as PNGs here.", parser=non_empty_path)
    ] = None,
    frames_cache: Annotated[
        Path | None,
        typer.Option("--frames-cache", help="Also say whether this cache holds VIDEO's frames.", parser=non_empty_path),
    ] = None,
    reranker: FramesOfOpt = DEFAULT_RERANKER_NAME,
) -> None:
    """Show exactly what the model will see of VIDEO: frame count, fps, indices, timestamps, size."""
    from rankvideo_cli.jobs.frames import run_frames

    run_frames(
        video,
        get_reranker(reranker.value).sampling,
        as_json=as_json,
        save_dir=save,
        console=stderr,
        frames_cache=frames_cache,
    )


@user_errors
def videos(
    directory: Annotated[
        Path,
        typer.Argument(help="The --videos directory: video files, sub-folders, .tar shards.", parser=non_empty_path),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Ignore the cached index; read every tar again.")] = False,
) -> None:
    """What `--videos DIR` finds: videos by docid in folders and inside .tar shards (counts, extensions)."""
    from rankvideo_cli.jobs.videos import run_videos

    run_videos(VideoSource(directory), as_json=as_json, rebuild=rebuild, console=stderr)
