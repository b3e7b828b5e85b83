"""Reference-faithful frame sampling for RankVideo (REFERENCE.md sections 1-3).

Data types live at the top of this module; the PyAV decoder below them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import torch


@dataclass(frozen=True)
class SamplingConfig:
    """Frame sampling and resize settings; defaults are the reference's (qwen-vl-utils 0.0.14 + RankVideo)."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 32
    min_pixels: int = 128 * 32 * 32
    max_pixels: int = 128 * 32 * 32
    total_pixels: int = 32 * 128 * 32 * 32
    patch_factor: int = 32  # patch 16 x spatial merge 2

    def fingerprint(self) -> str:
        """Stable short hash of the settings, part of every score-cache key."""
        payload = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]


@dataclass
class SampledVideo:
    """Frames exactly as the model sees them, plus the metadata the Qwen3-VL processor needs."""

    path: str
    frames: torch.Tensor  # uint8, (T, 3, H, W), RGB, already resized
    source_fps: float  # F: float(stream.average_rate)
    total_frames: int  # N: demuxed video packets, as decord counts them
    frame_indices: list[int]  # which decoded frames were taken
    source_size: tuple[int, int]  # (height, width) after rotation, before resize
    extra: dict = field(default_factory=dict)  # decode diagnostics (codec, rotation, seconds spent)

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[2]), int(self.frames.shape[3])

    @property
    def pair_timestamps(self) -> list[float]:
        """Seconds per temporal pair, as the processor renders them: mean of the pair's two frame times."""
        times = [index / self.source_fps for index in self.frame_indices]
        if len(times) % 2:
            times.append(times[-1])
        return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]

    def processor_metadata(self) -> dict:
        """Per-video metadata for the processor (`do_sample_frames=False`); fps is the SOURCE fps."""
        return {
            "fps": self.source_fps,
            "frames_indices": list(self.frame_indices),
            "total_num_frames": self.total_frames,
        }
