"""Everything checked before the model loads: option values and combinations, output locations (creatable,
writable, not an input, not another output) and where the defaults put things.

A rerank runs for hours: every mistake this module can see must fail in the first second, as a one-line
`UsageError` (exit 2), never after the scoring. Nothing here imports torch or touches a video.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.text import STDIN
from rankvideo_cli.pipeline.manifest import default_manifest_path
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.pipeline.store import default_store_dir


def is_stdout(path: str | Path | None) -> bool:
    return path is None or str(path) == "-"


def _nearest_existing(path: Path) -> Path:
    current = path
    while not os.path.lexists(current):
        parent = current.parent
        if parent == current:
            break
        current = parent
    return current


def _probe_directory(directory: Path, option: str, target: Path) -> None:
    """Create and remove a file in `directory`: the only test that sees read-only mounts, /proc, quotas
    and permissions as root does (os.access says yes to root on a read-only file system)."""
    try:
        handle, probe = tempfile.mkstemp(prefix=".rankvideo-probe.", dir=directory)
    except OSError as error:
        reason = os.strerror(error.errno) if error.errno else str(error)
        if error.errno in (errno.EROFS,):
            reason = "read-only file system"
        raise UsageError(f"{option} {target}: cannot write in {directory} ({reason.lower()})") from None
    os.close(handle)
    os.unlink(probe)


def check_writable_file(path: str | Path, option: str) -> Path:
    """`path` can be (re)written as a regular file: not a directory or special file, in a directory that
    exists or can be created and is writable. A symlink is checked (and later written) where it points."""
    target = Path(os.path.realpath(path))
    if target.exists():
        if target.is_dir():
            raise UsageError(f"{option} {path}: is a directory, not a file")
        if not target.is_file():
            raise UsageError(f"{option} {path}: is not a regular file (a device, FIFO or socket)")
    ancestor = _nearest_existing(target.parent)
    if not ancestor.is_dir():
        raise UsageError(f"{option} {path}: {ancestor} is not a directory")
    _probe_directory(ancestor, option, Path(path))
    return target


def check_writable_directory(path: str | Path, option: str) -> Path:
    """`path` is a writable directory, or can be created as one."""
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_dir():
        raise UsageError(f"{option} {path}: exists and is not a directory")
    ancestor = _nearest_existing(target)
    if not ancestor.is_dir():
        raise UsageError(f"{option} {path}: {ancestor} is not a directory")
    _probe_directory(ancestor, option, Path(path))
    return target


def _identity(path: str | Path) -> str:
    return os.path.realpath(path)


@dataclass(frozen=True)
class Named:
    option: str  # how the user named it: "-o", "--scores", "the run"...
    path: Path


def check_no_collisions(inputs: Iterable[Named], outputs: Iterable[Named]) -> None:
    """No output is the same file as an input or as another output (symlinks and `./` resolved)."""
    seen_inputs: dict[str, Named] = {}
    for named in inputs:
        if str(named.path) != STDIN:
            seen_inputs.setdefault(_identity(named.path), named)
    seen_outputs: dict[str, Named] = {}
    for named in outputs:
        key = _identity(named.path)
        if key in seen_inputs:
            source = seen_inputs[key]
            raise UsageError(
                f"{named.option} {named.path} is the same file as {source.option} {source.path}: "
                "an output must never overwrite an input"
            )
        if key in seen_outputs:
            other = seen_outputs[key]
            raise UsageError(f"{named.option} {named.path} and {other.option} {other.path} are the same file")
        seen_outputs[key] = named


def check_regular_input(path: Path, what: str) -> None:
    """A file to read whole must not be a FIFO, socket or device (reading one would hang or never end); a
    missing file is left to the reader, which reports it in its own words."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if stat.S_ISDIR(mode):
        raise UsageError(f"{what} {path}: is a directory, not a file")
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what} {path}: is not a regular file (a FIFO, socket or device); give a video file")


def check_rankvideo_cache(model: str | None = None) -> None:
    """`$RANKVIDEO_CACHE` (the video index, the tiny model) is a writable directory, when it is set or when the
    tiny model will be built there; a file or a read-only place fails now, not seconds into the model load."""
    from rankvideo_cli.scoring.tiny import TINY_MODEL_NAME, cache_root

    explicit = bool(os.environ.get("RANKVIDEO_CACHE"))
    if explicit or model == TINY_MODEL_NAME:
        check_writable_directory(cache_root(), "$RANKVIDEO_CACHE" if explicit else "the rankvideo cache")


def check_output_file(output: Path | None, inputs: Sequence[Named], option: str = "-o") -> None:
    """A run file to write (None or `-`: stdout, nothing to check): writable, and not one of `inputs`."""
    if output is None or is_stdout(output):
        return
    check_no_collisions(inputs, [Named(option, Path(output))])
    check_writable_file(Path(output), option)


@dataclass(frozen=True)
class OutputPlan:
    """Where a rerank writes: the run (None: stdout), the store directory, the manifest, the raw scores."""

    output: Path | None
    store_dir: Path
    manifest: Path
    scores: Path | None


def plan_outputs(
    output: Path | None,
    cache_dir: Path | None,
    manifest: Path | None,
    scores: Path | None,
    shard: Shard | None,
    inputs: Sequence[Named],
    reranker: str = "rankvideo",
) -> OutputPlan:
    """The output locations with their defaults, each checked writable, none an input or another output.

    Defaults (`store.default_store_dir`, `manifest.default_manifest_path`): the store is `OUTPUT.scores/` (with
    `-o`), else `./rankvideo-scores/`; the manifest is `OUTPUT.manifest.json`, else (stdout, or a shard) inside
    the store directory. `-o -` is stdout.
    """
    run_output = None if output is None or is_stdout(output) else Path(output)
    store_dir = Path(cache_dir) if cache_dir is not None else default_store_dir(run_output)
    manifest_path = (
        Path(manifest) if manifest is not None else default_manifest_path(run_output, store_dir, shard, reranker)
    )
    outputs = [Named("--manifest", manifest_path)]
    if run_output is not None:
        outputs.insert(0, Named("-o", run_output))
    if scores is not None:
        if is_stdout(scores):
            raise UsageError("--scores needs a file name (stdout carries the run)")
        outputs.append(Named("--scores", Path(scores)))
    check_no_collisions(inputs, [*outputs, Named("--cache", store_dir)])
    # the run file first (the default store and manifest sit beside it), then the store, then the rest
    for named in outputs:
        if named.option == "-o":
            check_writable_file(named.path, named.option)
    check_writable_directory(store_dir, "--cache" if cache_dir is not None else "the score store")
    for named in outputs:
        if named.option != "-o":
            check_writable_file(named.path, named.option)
    for named in outputs:
        if _identity(named.path).startswith(_identity(store_dir) + os.sep) and named.option != "--manifest":
            raise UsageError(f"{named.option} {named.path} is inside the score store {store_dir}; write it elsewhere")
    return OutputPlan(run_output, store_dir, manifest_path, Path(scores) if scores is not None else None)
