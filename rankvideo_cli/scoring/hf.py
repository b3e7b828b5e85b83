"""What the other scoring modules share about a loaded Hugging Face checkpoint: `LoadedModel`, and quiet
weight loading (no transformers progress bars on the CLI's stderr)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass
class LoadedModel:
    """A loaded checkpoint and what identifies it (the scorer's fingerprint is built from these)."""

    model: Any  # Qwen3VLForConditionalGeneration, eval mode, on `device`
    processor: Any  # Qwen3VLProcessor
    model_id: str  # hub id, `tiny-random`, or the local directory's absolute path
    revision: str  # commit hash, `local:<hash of config and weight sizes>`, or `tiny-random-v<N>`
    dtype: torch.dtype
    device: torch.device
    attn_implementation: str
    is_tiny: bool = False


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """No weight-loading progress bars: the CLI's stderr is for the user's progress, not ours."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()
