"""Frame sampling settings, in a module of their own: the score store, the pipeline's plan and the manifests need
them (and their fingerprint) without importing torch, PyAV or qwen-vl-utils, which `frames.py` needs to decode."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

# qwen-vl-utils 0.0.14 vision_process constants
FRAME_FACTOR = 2
VIDEO_MAX_TOKEN_NUM = 768

# Fields added after stores and frame caches were first written: left out of the fingerprint while unset, so the
# settings that existed before them keep their fingerprint (and every stored score and cached frame its key).
_LATER_FIELDS = ("fit_total_pixels",)


@dataclass(frozen=True)
class SamplingConfig:
    """Frame sampling and resize settings, as a qwen-vl-utils 0.0.14 video element gives them to `fetch_video`;
    the defaults are RankVideo's reference element (each reranker's are in `rankvideo_cli.scoring.rerankers`).

    `max_pixels` None: the element has no `max_pixels` key (qwen-vl-utils' per-frame bound from `total_pixels`
    and the frame count applies alone). `fit_total_pixels`: a video whose frames would take more tokens than
    `fit_total_pixels / patch_factor**2` is sampled with that `total_pixels` instead (the same frames, smaller).
    """

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 32
    min_pixels: int = 128 * 32 * 32
    max_pixels: int | None = 128 * 32 * 32
    total_pixels: float = 32 * 128 * 32 * 32
    patch_factor: int = 32  # patch 16 x spatial merge 2
    fit_total_pixels: int | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        """The settings as manifests record them (a later field only when set)."""
        return {name: value for name, value in asdict(self).items() if not (name in _LATER_FIELDS and value is None)}

    def fingerprint(self) -> str:
        """Stable short hash of the settings, part of every score-cache key."""
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(payload).hexdigest()[:16]

    def qwen_element(self) -> dict[str, float]:
        """The video element's sampling keys as the reference passes them to `smart_nframes`."""
        return {"fps": self.fps, "min_frames": self.min_frames, "max_frames": self.max_frames}

    def video_token_budget(self) -> int:
        """The most video tokens (`<|video_pad|>`) one sampled video can bring to a prompt."""
        pairs = self.max_frames // FRAME_FACTOR
        per_frame = VIDEO_MAX_TOKEN_NUM * self.patch_factor**2
        if self.max_pixels is not None:
            per_frame = min(per_frame, self.max_pixels)
        tokens = pairs * (per_frame // self.patch_factor**2)
        if self.fit_total_pixels is not None:
            tokens = min(tokens, int(self.fit_total_pixels // self.patch_factor**2))
        return tokens
