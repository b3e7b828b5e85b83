"""doctor: what this machine has of what a rerank with these options needs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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
from rankvideo_cli.scoring.options import DEFAULT_MODEL, ScorerOptions


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
    and where each configured default comes from. What doctor is not given, it takes from what a rerank would
    take (RANKVIDEO_RERANK_<OPTION>, rankvideo.toml). Exit 1 with one line per problem."""
    from rankvideo_cli.cli.defaults import Defaults, configured, configured_value
    from rankvideo_cli.jobs.doctor import DoctorRequest, run_doctor

    context = current_context()
    group = context.find_root().command
    defaults = context.obj if isinstance(context.obj, Defaults) else Defaults()
    specs = group.option_specs()
    values: dict[str, Any] = {
        "model": model,
        "revision": revision,
        "cache_dir": cache_dir,
        "dtype": dtype,
        "device": device,
        "attn_implementation": attn_implementation,
        "reranker": reranker.value if reranker is not None else None,
        "videos": videos,
        "cache": cache,
        "frames_cache": frames_cache,
    }
    taken_from_rerank = {}
    for key, spec in specs["rerank"].items():
        if spec.name in values and values[spec.name] is None:
            found = configured_value("rerank", key, spec, defaults)
            if found is not None:
                values[spec.name] = Path(found[0]) if spec.path else found[0]
                taken_from_rerank[key] = found[1]
    scorer = None
    if any(values[name] is not None for name in ("model", "device", "dtype", "attn_implementation")):
        scorer = ScorerOptions(
            model=values["model"] or DEFAULT_MODEL,
            revision=values["revision"],
            cache_dir=str(values["cache_dir"]) if values["cache_dir"] is not None else None,
            dtype=values["dtype"],
            device=values["device"],
            attn_implementation=values["attn_implementation"],
            reranker=values["reranker"],
        )
    request = DoctorRequest(
        scorer=scorer,
        check_model=values["model"] is not None,
        videos=values["videos"],
        cache=values["cache"],
        frames_cache=values["frames_cache"],
        configured=configured(specs, defaults),
        config_files=defaults.files,
        taken_from_rerank=taken_from_rerank,
    )
    run_doctor(request, as_json=as_json, console=stderr)
