"""The reference's rules for sampling a video (REFERENCE.md sections 1-3), without torch: how many frames, which
indices, the resized size, the pair timestamps, and which videos the model refuses.

qwen-vl-utils 0.0.14 (`smart_nframes`, `smart_resize`, `fetch_video`) and `torch.linspace` are the source of
truth; both import torch, which the scorer has but `frames`, `sample`'s plan, the report and a fully stored
rerun must not pay for. So this module carries a copy of their arithmetic, operation for operation, and
tests/test_videos_sampling.py holds it equal to them over every frame count up to 5,000, a grid of frame rates and a
grid of sizes. Every consumer (the scorer's decoder, `frames`, `sample`, the report's thumbnails) plans a video
through `videos/plan.py`, which applies these rules, so a video the model refuses is refused everywhere alike.
"""

from __future__ import annotations

import math

import numpy as np

from rankvideo_cli.videos.config import FRAME_FACTOR, VIDEO_MAX_TOKEN_NUM, SamplingConfig

# qwen-vl-utils 0.0.14 vision_process constant (FRAME_FACTOR and VIDEO_MAX_TOKEN_NUM: videos/config.py)
MAX_RATIO = 200


class SamplingRefused(ValueError):
    """The reference cannot sample this video; `kind` is the VideoError kind the scorer reports."""

    def __init__(self, kind: str, detail: str) -> None:
        self.kind = kind
        self.detail = detail
        super().__init__(detail)


def sample_count(total_frames: int, source_fps: float, config: SamplingConfig) -> int:
    """n: how many frames the reference takes (`smart_nframes` with the config's fps/min/max); `SamplingRefused`
    ("too_few_frames") when the video has fewer frames than the model needs."""
    min_frames = math.ceil(config.min_frames / FRAME_FACTOR) * FRAME_FACTOR
    max_frames = math.floor(config.max_frames / FRAME_FACTOR) * FRAME_FACTOR
    nframes = total_frames / source_fps * config.fps
    nframes = min(min(max(nframes, min_frames), max_frames), total_frames)
    nframes = math.floor(nframes / FRAME_FACTOR) * FRAME_FACTOR
    if not (FRAME_FACTOR <= nframes <= total_frames):
        raise SamplingRefused("too_few_frames", f"{total_frames} frame(s); the model needs at least {FRAME_FACTOR}")
    return int(nframes)


def sample_indices(total_frames: int, count: int) -> list[int]:
    """`torch.linspace(0, N - 1, n).round().long()` in float32 as torch's CPU kernel computes it: the first half
    counted up from 0, the second half down from N - 1, then rounded half to even."""
    if count == 1:
        return [0]
    start, end = np.float32(0), np.float32(total_frames - 1)
    step = np.float32((end - start) / np.float32(count - 1))
    position = np.arange(count, dtype=np.int64)
    rising = start + step * position.astype(np.float32)
    falling = end - step * (count - 1 - position).astype(np.float32)
    values = np.where(position < count // 2, rising, falling).astype(np.float32)
    return [int(index) for index in np.rint(values).astype(np.int64)]


def smart_resize(height: int, width: int, factor: int, min_pixels: float, max_pixels: float) -> tuple[int, int]:
    """qwen-vl-utils 0.0.14 `smart_resize`; `SamplingRefused` ("bad_aspect_ratio") past `MAX_RATIO`."""
    ratio = max(height, width) / min(height, width)
    if ratio > MAX_RATIO:
        raise SamplingRefused(
            "bad_aspect_ratio",
            f"{width}x{height} has aspect ratio {ratio:.1f}; qwen-vl-utils allows at most {MAX_RATIO}",
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def output_size(height: int, width: int, count: int, config: SamplingConfig) -> tuple[int, int]:
    """(height, width) after resizing, computed exactly as `fetch_video` does for `count` sampled frames (with
    `config.total_pixels`, or `config.fit_total_pixels` where the video `is_fitted`)."""
    size = _fetch_video_size(height, width, count, config, config.total_pixels)
    if config.fit_total_pixels is not None and video_tokens(count, size, config) > _fit_tokens(config):
        return _fetch_video_size(height, width, count, config, config.fit_total_pixels)
    return size


def is_fitted(height: int, width: int, count: int, config: SamplingConfig) -> bool:
    """Whether the video's frames at `config.total_pixels` would take more tokens than `config.fit_total_pixels`
    allows, so that they are sampled smaller (`output_size`)."""
    if config.fit_total_pixels is None:
        return False
    size = _fetch_video_size(height, width, count, config, config.total_pixels)
    return video_tokens(count, size, config) > _fit_tokens(config)


def video_tokens(count: int, size: tuple[int, int], config: SamplingConfig) -> int:
    """The `<|video_pad|>` tokens of `count` frames of `size`: one per merged patch of each frame pair."""
    return (count // FRAME_FACTOR) * (size[0] * size[1] // config.patch_factor**2)


def _fit_tokens(config: SamplingConfig) -> int:
    return int((config.fit_total_pixels or 0) // config.patch_factor**2)


def _fetch_video_size(
    height: int, width: int, count: int, config: SamplingConfig, total_pixels: float
) -> tuple[int, int]:
    """`fetch_video`'s lines for an element with `min_pixels`, `total_pixels` and (when set) `max_pixels`."""
    factor = config.patch_factor
    frame_max_pixels = VIDEO_MAX_TOKEN_NUM * factor * factor
    max_pixels = max(min(frame_max_pixels, total_pixels / count * FRAME_FACTOR), int(config.min_pixels * 1.05))
    if config.max_pixels is not None:
        max_pixels = min(config.max_pixels, max_pixels)
    return smart_resize(height, width, factor, config.min_pixels, max_pixels)


def pair_timestamps(frame_indices: list[int] | tuple[int, ...], source_fps: float) -> list[float]:
    """Seconds per temporal pair: the mean of the pair's two frame times (index / source fps)."""
    times = [index / source_fps for index in frame_indices]
    if len(times) % 2:
        times.append(times[-1])
    return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]
