"""Shared session fixtures: a hermetic cache, the `tiny-random` model (built once per session) and synthetic
sampled videos.

No test writes to the user's cache: `RANKVIDEO_CACHE` points at a session temporary directory for the whole
run, so `--model tiny-random` anywhere in the suite (CLI, pipeline) finds the model `tiny_model_dir` built.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


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
def tiny_model_dir(rankvideo_cache: Path) -> Path:
    """The `tiny-random` model directory, built once per session into the session cache."""
    from rankvideo_cli.scoring.tiny import ensure_tiny_model

    return ensure_tiny_model(rankvideo_cache)


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
