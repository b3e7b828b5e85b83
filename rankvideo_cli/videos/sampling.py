"""The reference's arithmetic for sampling a video (REFERENCE.md sections 1-3): how many frames, which
indices, the resized size, the display rotation and the pair timestamps. qwen-vl-utils 0.0.14 is the source of
truth; nothing is re-derived here."""

from __future__ import annotations

import logging

import torch
from qwen_vl_utils import vision_process as qwen_vision
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as tv_functional

from rankvideo_cli.videos.config import SamplingConfig


class _DropNframesWarning(logging.Filter):
    """qwen-vl-utils warns on stderr whenever a video is slower than the sampling fps; that is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("smart_nframes: nframes[")


logging.getLogger(qwen_vision.__name__).addFilter(_DropNframesWarning())


def sample_count(total_frames: int, source_fps: float, config: SamplingConfig) -> int:
    """n: how many frames the reference takes (`smart_nframes` with the config's fps/min/max)."""
    element = config.qwen_element()
    return int(qwen_vision.smart_nframes(element, total_frames=total_frames, video_fps=source_fps))


def sample_indices(total_frames: int, count: int) -> list[int]:
    """The reference's indices: `torch.linspace(0, N - 1, n).round().long()`."""
    return torch.linspace(0, total_frames - 1, count).round().long().tolist()


def output_size(height: int, width: int, count: int, config: SamplingConfig) -> tuple[int, int]:
    """(height, width) after resizing, computed exactly as `fetch_video` does for `count` sampled frames."""
    factor = config.patch_factor
    frame_max_pixels = qwen_vision.VIDEO_MAX_TOKEN_NUM * factor * factor
    max_pixels = max(
        min(frame_max_pixels, config.total_pixels / count * qwen_vision.FRAME_FACTOR),
        int(config.min_pixels * 1.05),
    )
    max_pixels = min(config.max_pixels, max_pixels)
    resized = qwen_vision.smart_resize(
        height, width, factor=factor, min_pixels=config.min_pixels, max_pixels=max_pixels
    )
    return int(resized[0]), int(resized[1])


def resize_frames(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> uint8 (..., 3, h, w), the call `fetch_video` makes (a no-op at equal size).

    torchvision runs float32 bicubic interpolation with antialiasing, clamps to [0, 255], rounds, casts.
    """
    return tv_functional.resize(frames, list(size), interpolation=InterpolationMode.BICUBIC, antialias=True)


def pair_timestamps(frame_indices: list[int] | tuple[int, ...], source_fps: float) -> list[float]:
    """Seconds per temporal pair: the mean of the pair's two frame times (index / source fps)."""
    times = [index / source_fps for index in frame_indices]
    if len(times) % 2:
        times.append(times[-1])
    return [(times[i] + times[i + 1]) / 2 for i in range(0, len(times), 2)]
