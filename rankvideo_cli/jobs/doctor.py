"""`rankvideo doctor`: what this machine has of what a rerank with the given options needs, before a job is
queued for hours: versions against the declared floors, GPUs (free memory, bfloat16), flash-attn, the video
decoders, the model offline, writable caches with free disk, the SLURM variables a job will read, and where each
configured default comes from. Exit 0 when what the options need is there; else one line per problem, each with
what to do, and exit 1.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from rankvideo_cli import __version__
from rankvideo_cli.io.atomic import write_stdout
from rankvideo_cli.jobs.readiness import (
    FAIL,
    GIB,
    INFO,
    OK,
    WARN,
    CudaDevice,
    Finding,
    check_device,
    check_model,
    check_space,
    flash_attn_problem,
    report_problems,
)
from rankvideo_cli.messages import say, shorten
from rankvideo_cli.scoring.model_files import hub_cache
from rankvideo_cli.scoring.options import ScorerOptions

# The codecs MultiVENT's videos come in, and what decodes each (FFmpeg's decoder names, any of them).
DECODERS = {
    "h264": ("h264",),
    "vp9": ("vp9", "libvpx-vp9"),
    "av1": ("libdav1d", "libaom-av1", "av1"),
    "mpeg4": ("mpeg4",),
}
VIDEOS_PROBED = 20  # the first videos by name: enough to meet each codec of a collection, quick on 110k
# What a job reads from its environment (SLURM's, and the tool's own)
JOB_VARIABLES = (
    "SLURM_JOB_ID",
    "SLURM_ARRAY_JOB_ID",
    "SLURM_ARRAY_TASK_ID",
    "SLURM_ARRAY_TASK_COUNT",
    "SLURM_ARRAY_TASK_MIN",
    "SLURM_ARRAY_TASK_MAX",
    "SLURM_RESTART_COUNT",
    "SLURM_CPUS_PER_TASK",
    "CUDA_VISIBLE_DEVICES",
    "RANKVIDEO_SHARDS",
    "RANKVIDEO_REQUEUE",
    "RANKVIDEO_DEVICES",
    "RANKVIDEO_CACHE",
    "RANKVIDEO_CONFIG",
    "HF_HOME",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
)


@dataclass(frozen=True)
class DoctorRequest:
    """What to check: the device the scorer's options resolve to (None: none asked for) and, with `check_model`,
    their model; the videos to probe, the score store and frame cache to write; and the defaults configured
    outside the command line (rows of `cli/defaults.configured`), the files read, and the options doctor took
    from what a rerank would take ({option: where from})."""

    scorer: ScorerOptions | None = None
    check_model: bool = False
    videos: Path | None = None
    cache: Path | None = None
    frames_cache: Path | None = None
    configured: Sequence[dict[str, Any]] = ()
    config_files: Sequence[Path] = ()
    taken_from_rerank: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Checkup:
    """The findings, in the order they are shown, and the facts behind them (for --json)."""

    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": not any(finding.failed for finding in self.findings),
            "checks": [finding.as_dict() for finding in self.findings],
            **self.facts,
        }


def run_doctor(request: DoctorRequest, *, as_json: bool, console: Console) -> Checkup:
    """Check, print (a table, or JSON on stdout), and raise `NotReady` after one line per problem."""
    checkup = examine(request)
    if as_json:
        write_stdout(json.dumps(checkup.as_dict(), indent=2, sort_keys=True, default=str) + "\n")
    else:
        print_checkup(checkup)
    report_problems(checkup.findings, lambda line: say(console, line), "this machine lacks what the options need")
    return checkup


def examine(request: DoctorRequest) -> Checkup:
    checkup = Checkup()
    checkup.add(Finding("rankvideo", INFO, f"{__version__} on Python {platform.python_version()} ({sys.executable})"))
    check_versions(checkup)
    check_gpus(checkup, request.scorer)
    check_decoders(checkup, request.videos)
    if request.scorer is not None and request.check_model:
        finding, found = check_model(request.scorer)
        checkup.add(finding)
        checkup.facts["model"] = {"directory": found.directory, "revision": found.revision, "kind": found.kind}
    else:
        checkup.add(Finding("model", INFO, "not checked: give --model (or set rerank's in rankvideo.toml)"))
    check_locations(checkup, request)
    check_job(checkup)
    check_configuration(checkup, request)
    return checkup


def check_versions(checkup: Checkup) -> None:
    """Every declared requirement installed within its bounds (`versions.py`, the lowest-versions CI job's)."""
    from rankvideo_cli.versions import declared_requirements, installed_version, out_of_bounds

    checkup.facts["versions"] = {name: installed_version(name) for name in sorted(declared_requirements())}
    problems = out_of_bounds()
    if problems:
        detail = "; ".join(f"{p.name} {p.installed or 'missing'} (needs {p.name}{p.specifier})" for p in problems)
        fix = "pip install " + " ".join(f"'{p.name}{p.specifier}'" for p in problems)
        checkup.add(Finding("versions", FAIL, detail, fix))
    else:
        count = len(checkup.facts["versions"])
        checkup.add(Finding("versions", OK, f"{count} requirements within their declared bounds"))


def check_gpus(checkup: Checkup, scorer: ScorerOptions | None) -> None:
    """The CUDA devices (free memory, bfloat16), flash-attn, and the device the options resolve to."""
    import importlib.util

    try:
        import torch
    except ImportError:
        checkup.add(Finding("gpus", FAIL, "torch is not installed", "install rankvideo-cli's requirements"))
        return
    gpus = [CudaDevice.at(index) for index in range(torch.cuda.device_count() if torch.cuda.is_available() else 0)]
    checkup.facts["gpus"] = [
        {
            "index": gpu.index,
            "name": gpu.name,
            "free_gib": round(gpu.free_bytes / GIB, 1),
            "total_gib": round(gpu.total_bytes / GIB, 1),
            "bf16": gpu.bf16,
        }
        for gpu in gpus
    ]
    flash = importlib.util.find_spec("flash_attn") is not None
    described = "; ".join(f"cuda:{gpu.index} ({gpu.describe()})" + ("" if gpu.bf16 else " (no bf16)") for gpu in gpus)
    checkup.add(
        Finding("gpus", OK, f"torch {torch.__version__}: {described}")
        if gpus
        else Finding("gpus", WARN, f"torch {torch.__version__}: no CUDA device (a rerank would score on the CPU)")
    )
    broken = flash_attn_problem()
    if broken is not None:
        # on CUDA it is the default choice, and loading would fail
        status = FAIL if gpus else WARN
        fix = f"reinstall flash-attn built for torch {torch.__version__}, or uninstall it (sdpa is used then)"
        checkup.add(Finding("flash-attn", status, broken, fix))
    else:
        found = "imports" if flash else "not installed (sdpa is used)"
        checkup.add(Finding("flash-attn", OK if flash else INFO, found))
    if scorer is not None:
        finding, _ = check_device(scorer)
        checkup.add(finding)


def check_decoders(checkup: Checkup, videos: Path | None) -> None:
    """FFmpeg's decoders for MultiVENT's codecs, and those of the first videos under `videos`."""
    try:
        import av
    except ImportError:
        checkup.add(Finding("decoders", FAIL, "PyAV is not installed", "pip install av"))
        return
    available = set(av.codecs_available)
    have = {codec: [name for name in names if name in available] for codec, names in DECODERS.items()}
    missing = [codec for codec, names in have.items() if not names]
    ffmpeg = ".".join(str(part) for part in av.library_versions.get("libavcodec", ()))
    checkup.facts["decoders"] = have
    detail = f"PyAV {av.__version__} (libavcodec {ffmpeg}): " + ", ".join(
        f"{codec} ({names[0]})" for codec, names in have.items() if names
    )
    if missing:
        checkup.add(Finding("decoders", WARN, f"{detail}; no decoder for {', '.join(missing)}"))
    else:
        checkup.add(Finding("decoders", OK, detail))
    if videos is not None:
        checkup.add(probe_videos(videos, available))


def probe_videos(videos: Path, available: set[str]) -> Finding:
    """The codecs of the first `VIDEOS_PROBED` videos (by docid) that `--videos` finds, in folders or inside
    .tar shards (the index `rankvideo videos` builds), each with a decoder here."""
    from rankvideo_cli.errors import RankVideoError
    from rankvideo_cli.videos.container import OpenVideo, VideoError
    from rankvideo_cli.videos.index import build_index

    if not videos.is_dir():
        return Finding("videos", FAIL, f"{videos}: not a directory", "pass the directory holding the videos")
    try:
        index = build_index(videos)
    except RankVideoError as error:
        return Finding("videos", FAIL, str(error))
    docids = sorted(index.entries)[:VIDEOS_PROBED]
    if not docids:
        return Finding("videos", WARN, f"{videos}: no videos found (see `rankvideo videos {videos}`)")
    codecs: dict[str, int] = {}
    unreadable: list[str] = []
    for docid in docids:
        located = index.locate(docid)
        try:
            opened = OpenVideo(located) if located is not None else None
        except VideoError as error:
            # the first one says why, the others are named
            unreadable.append(docid if unreadable else f"{docid} ({error.kind}: {shorten(str(error), 120)})")
            continue
        if opened is None:
            unreadable.append(docid)
            continue
        name = opened.stream.codec_context.name
        opened.container.close()
        codecs[name] = codecs.get(name, 0) + 1
    found = ", ".join(f"{codec} x{count}" for codec, count in sorted(codecs.items()))
    undecodable = [codec for codec in codecs if codec not in available]
    if undecodable or unreadable:
        problems = ([f"no decoder for {', '.join(undecodable)}"] if undecodable else []) + (
            [f"unreadable: {', '.join(unreadable[:3])}"] if unreadable else []
        )
        detail = f"{len(docids)} of {videos} probed ({found or 'none opened'}): {'; '.join(problems)}"
        return Finding("videos", FAIL, detail, "see `rankvideo frames` on one of them")
    return Finding("videos", OK, f"{len(docids)} of {videos} probed: {found}")


def check_locations(checkup: Checkup, request: DoctorRequest) -> None:
    """The places a run writes: writable, with their free disk."""
    from rankvideo_cli.scoring.tiny import cache_root

    places = [("rankvideo cache", cache_root()), ("working directory", Path.cwd())]
    if request.scorer is not None:
        places.append(("model cache", hub_cache(request.scorer.cache_dir)))
    if request.cache is not None:
        places.append(("score store", request.cache))
    if request.frames_cache is not None:
        places.append(("frame cache", request.frames_cache))
    for what, path in places:
        checkup.add(check_space(what, path))


def check_job(checkup: Checkup) -> None:
    """The SLURM (and tool) variables a job will read, the shard `--shard auto` gives, and the cores here
    against what decoding needs."""
    from rankvideo_cli.errors import RankVideoError
    from rankvideo_cli.pipeline.shards import parse_shard

    found = {name: os.environ[name] for name in JOB_VARIABLES if name in os.environ}
    checkup.facts["environment"] = found
    if "SLURM_JOB_ID" in found:
        try:
            shard = parse_shard("auto")
            detail = f"job {found['SLURM_JOB_ID']}: --shard auto is {shard if shard is not None else 'the whole run'}"
            checkup.add(Finding("slurm", OK, detail))
        except RankVideoError as error:
            checkup.add(Finding("slurm", FAIL, str(error)))
    else:
        checkup.add(Finding("slurm", INFO, "not in a SLURM job"))
    from rankvideo_cli.jobs.slurm import cores_per_gpu

    decoding, from_cache = cores_per_gpu(frames_cache=False), cores_per_gpu(frames_cache=True)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    checkup.facts["cores"] = cores
    detail = f"{cores} cores: decoding feeds a GPU with {decoding}, a frame cache with {from_cache}"
    status = OK if cores >= decoding else INFO
    checkup.add(Finding("cores", status, detail + ("" if status == OK else " (`rankvideo sample` on CPU nodes)")))


def check_configuration(checkup: Checkup, request: DoctorRequest) -> None:
    """The defaults set outside the command line, and where each comes from."""
    checkup.facts["config_files"] = [str(path) for path in request.config_files]
    checkup.facts["configured"] = list(request.configured)
    files = ", ".join(str(path) for path in request.config_files) or "no rankvideo.toml"
    checkup.add(Finding("config", INFO, f"{files}; {len(request.configured)} defaults set"))
    checkup.facts["taken_from_rerank"] = dict(request.taken_from_rerank)
    for key, where in sorted(request.taken_from_rerank.items()):
        checkup.add(Finding(f"  doctor --{key.replace('_', '-')}", INFO, f"rerank's, from {where}"))
    for row in request.configured:
        option = f"  {row['command']} --{row['option'].replace('_', '-')}"
        checkup.add(Finding(option, INFO, f"{row['value']!r} from {row['from']}"))


def print_checkup(checkup: Checkup) -> None:
    """The findings on stdout: a table on a terminal, tab-separated columns through a pipe."""
    if not sys.stdout.isatty():
        write_stdout("".join(f"{f.status}\t{f.check.strip()}\t{f.detail}\n" for f in checkup.findings))
        return
    table = Table(box=None, show_header=True, header_style="bold", pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("found", overflow="fold")
    style = {OK: "green", WARN: "yellow", FAIL: "bold red", INFO: "dim"}
    for finding in checkup.findings:
        table.add_row(Text(finding.status, style=style[finding.status]), Text(finding.check), Text(finding.detail))
    Console(highlight=False).print(table)
