"""doctor: what this machine has of what a rerank with these options needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rankvideo_cli.cli.params import (
    AttnOpt,
    CacheDirOpt,
    DeviceOpt,
    DtypeOpt,
    RerankerName,
    RevisionOpt,
    current_context,
    non_empty_path,
    stderr,
    user_errors,
)
from rankvideo_cli.scoring.options import ScorerOptions


@user_errors
def doctor(
    model: Annotated[str | None, typer.Option("--model", help="Check this model (hub id or directory).")] = None,
    revision: RevisionOpt = None,
    cache_dir: CacheDirOpt = None,
    dtype: DtypeOpt = None,
    device: DeviceOpt = None,
    attn_implementation: AttnOpt = None,
    reranker: Annotated[RerankerName | None, typer.Option("--reranker", help="rankvideo or qwen3-vl-reranker.")] = None,
    videos: Annotated[
        Path | None, typer.Option("--videos", help="Probe the codecs of the first videos here.", parser=non_empty_path)
    ] = None,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="The score store a run will write.", parser=non_empty_path)
    ] = None,
    frames_cache: Annotated[
        Path | None, typer.Option("--frames-cache", help="The frame cache a run reads.", parser=non_empty_path)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout instead of a table.")] = False,
) -> None:
    """Check this machine for a rerank: versions, GPUs, decoders, the model offline, caches and disk, SLURM,
    and where each configured default comes from. Exit 1 with one line per problem."""
    from rankvideo_cli.cli.defaults import Defaults, configured
    from rankvideo_cli.jobs.doctor import DoctorRequest, run_doctor

    context = current_context()
    group = context.find_root().command
    defaults = context.obj if isinstance(context.obj, Defaults) else Defaults()
    scorer = None
    if model is not None:
        scorer = ScorerOptions(
            model=model,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            dtype=dtype,
            device=device,
            attn_implementation=attn_implementation,
            reranker=reranker.value if reranker is not None else None,
        )
    request = DoctorRequest(
        scorer=scorer,
        videos=videos,
        cache=cache,
        frames_cache=frames_cache,
        configured=configured(group.options_of(), defaults),
        config_files=defaults.files,
    )
    run_doctor(request, as_json=as_json, console=stderr)
