"""The fixtures every test file may use: a hermetic cache, the `tiny-random` model (built once per session),
synthetic sampled videos, the session's made-to-order video files, a guard that no model loads, and disks that
fill up. Plain helpers (paths of the sample, `invoke`, `assert_refused`, rerank arguments) are in helpers.py.

No test writes to the user's cache: `RANKVIDEO_CACHE` points at a session temporary directory for the whole
run, so `--model tiny-random` anywhere in the suite (CLI, pipeline) finds the model `tiny_model_dir` built.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from helpers import (
    FAKE,
    QRELS,
    TINY,
    TRAINING,
    VIDEOS,
    Reranked,
    invoke,
    invoke_ok,
    sample_rerank_args,
    stored_rerank_args,
)

if TYPE_CHECKING:
    from video_factory import VideoCache


# pytest-xdist runs a worker per core: torch's own threads in each would oversubscribe the cores (and spin in
# OpenMP barriers), so each worker, and every command it starts, computes on one thread unless told otherwise.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def no_user_defaults() -> Iterator[None]:
    """No rankvideo.toml and no RANKVIDEO_<COMMAND>_<OPTION> of the developer's changes what a test runs
    (`RANKVIDEO_CONFIG=/dev/null` reads no file; tests/test_cli_defaults.py sets its own)."""
    import typer.main

    from rankvideo_cli.cli import app

    prefixes = tuple(f"RANKVIDEO_{name.upper()}_" for name in typer.main.get_command(app).commands)
    saved = {name: value for name, value in os.environ.items() if name.startswith(prefixes)}
    saved_config = os.environ.get("RANKVIDEO_CONFIG")
    for name in saved:
        del os.environ[name]
    os.environ["RANKVIDEO_CONFIG"] = os.devnull
    yield
    os.environ.update(saved)
    if saved_config is None:
        os.environ.pop("RANKVIDEO_CONFIG", None)
    else:
        os.environ["RANKVIDEO_CONFIG"] = saved_config


@pytest.fixture(scope="session", autouse=True)
def rankvideo_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's `RANKVIDEO_CACHE` (empty at the start; `tiny_model_dir` builds into it)."""
    root = tmp_path_factory.mktemp("rankvideo-cache")
    previous = os.environ.get("RANKVIDEO_CACHE")
    os.environ["RANKVIDEO_CACHE"] = str(root)
    yield root
    if previous is None:
        os.environ.pop("RANKVIDEO_CACHE", None)
    else:
        os.environ["RANKVIDEO_CACHE"] = previous


@pytest.fixture(scope="session")
def tiny_model_dir(rankvideo_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `tiny-random` model directory in the session cache: built once per run, by the first pytest-xdist
    worker that needs it (the others wait for it), and linked into each worker's cache."""
    from rankvideo_cli.scoring.tiny import ensure_tiny_model

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's directory, above each worker's own
    with open(shared / "tiny-model.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = ensure_tiny_model(shared / "tiny-model")
    target = rankvideo_cache / built.name
    if not target.exists():
        shutil.copytree(built, target, copy_function=os.link)
    return target


@pytest.fixture(scope="session")
def tiny_loaded(tiny_model_dir: Path):
    """The tiny model loaded on the CPU in float32: model, processor and identity (do not mutate)."""
    from rankvideo_cli.scoring.loading import load_model
    from rankvideo_cli.scoring.options import ScorerOptions

    return load_model(ScorerOptions("tiny-random", device="cpu", dtype="float32"))


@pytest.fixture(scope="session")
def tiny_scorer(tiny_loaded):
    """A `Qwen3VLScorer` over the tiny model (full score mode, default batch size). Shared: do not mutate;
    build your own `Qwen3VLScorer.from_loaded(tiny_loaded, ...)` to change settings."""
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer

    return Qwen3VLScorer.from_loaded(tiny_loaded)


@pytest.fixture(scope="session")
def make_sampled_video() -> Callable[..., object]:
    """Factory for a `SampledVideo` of seeded random uint8 frames (no decoding involved).

    `make_sampled_video(seed=0, frames=4, height=64, width=96, fps=25.0, total_frames=100)`; the frame
    indices are the reference's `linspace(0, total_frames - 1, frames).round()`.
    """
    import torch

    from rankvideo_cli.videos.frames import SampledVideo

    def make(
        seed: int = 0,
        frames: int = 4,
        height: int = 64,
        width: int = 96,
        fps: float = 25.0,
        total_frames: int = 100,
        path: str | None = None,
    ) -> SampledVideo:
        generator = torch.Generator().manual_seed(seed)
        pixels = torch.randint(0, 256, (frames, 3, height, width), generator=generator, dtype=torch.uint8)
        indices = torch.linspace(0, total_frames - 1, frames).round().long().tolist()
        return SampledVideo(
            path=path or f"synthetic-{seed}.mp4",
            frames=pixels,
            source_fps=fps,
            total_frames=total_frames,
            frame_indices=indices,
            source_size=(height, width),
        )

    return make


@pytest.fixture(scope="session")
def videos(tmp_path_factory: pytest.TempPathFactory) -> VideoCache:
    """Video files made to order by tests/video_factory.py, each made once per session."""
    from video_factory import VideoCache

    return VideoCache.for_session(tmp_path_factory)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a scorer or a model fails the test: what is checked must come before it (or need none)."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was loaded")

    # deferred first: importing it binds loading's function, which must still be the real one to restore
    monkeypatch.setattr("rankvideo_cli.scoring.deferred.load_scorer", refuse)
    monkeypatch.setattr("rankvideo_cli.scoring.loading.load_scorer", refuse)
    monkeypatch.setattr("rankvideo_cli.scoring.loading.load_model", refuse)


class FullDisks:
    """Directories whose files cannot be made durable (ENOSPC at fsync) until they are freed: a full disk, or a
    failed NFS write-back. (`test_cli_report.py`'s `fill_disk` also fails writes, after some room.)"""

    def __init__(self) -> None:
        self.full: set[Path] = set()

    def fill(self, directory: Path) -> None:
        self.full.add(Path(directory).resolve())

    def free(self, directory: Path) -> None:
        self.full.discard(Path(directory).resolve())

    def holds(self, descriptor: int) -> bool:
        try:
            where = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
        except OSError:
            return False
        return any(where.is_relative_to(directory) for directory in self.full)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> FullDisks:
    disks = FullDisks()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        if disks.holds(descriptor):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return disks


def _training_run(work: Path, model: str) -> Path:
    scores = str(work / "s.jsonl")
    invoke_ok(*stored_rerank_args(work / "run.trec", work / "store", *TRAINING, "--scores", scores, model=model))
    return work


@pytest.fixture(scope="session")
def training_run(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training-prompt rerank with the tiny model."""
    return _training_run(tmp_path_factory.mktemp("training"), TINY)


@pytest.fixture(scope="session")
def fake_training_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A training-prompt rerank with the fake scorer."""
    return _training_run(tmp_path_factory.mktemp("fake-training"), FAKE)


@pytest.fixture(scope="session")
def reranked(tmp_path_factory: pytest.TempPathFactory) -> Reranked:
    """The flat sample reranked with the fake scorer, with its raw scores and an evaluation."""
    work = tmp_path_factory.mktemp("cli-rerank")
    output, scores = work / "reranked.trec", work / "scores.jsonl"
    result = invoke(*sample_rerank_args(VIDEOS, "-o", output, "--scores", scores, "--qrels", QRELS, "--tag", "rv-test"))
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in scores.read_text().splitlines()]
    return Reranked(result, output, {(record["qid"], record["docid"]): record for record in records})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The SLURM tests first: they mostly wait for the scheduler, so under pytest-xdist they overlap with the
    other workers' files instead of running alone at the end of the run."""
    items.sort(key=lambda item: item.path.name != "test_system_slurm.py")
