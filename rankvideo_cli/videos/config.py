"""Frame sampling settings, in a module of their own: the score store, the pipeline's plan and the manifests need
them (and their fingerprint) without importing torch, PyAV or qwen-vl-utils, which `frames.py` needs to decode."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


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

    def qwen_element(self) -> dict[str, float]:
        """The video element's sampling keys as the reference passes them to `smart_nframes`."""
        return {"fps": self.fps, "min_frames": self.min_frames, "max_frames": self.max_frames}
