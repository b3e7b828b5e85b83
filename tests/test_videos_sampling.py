"""rankvideo_cli/videos/sampling.py: the reference's arithmetic (REFERENCE.md sections 1-2), checked against
formulas written out here and against qwen-vl-utils 0.0.14 itself.

Nothing in this file decodes video: frame counts, indices, output sizes, timestamps, and the resize kernel and
rotation rule the decoder applies (videos/frames.py, videos/container.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import rotate_rgb, rotation_turns
from rankvideo_cli.videos.frames import SampledVideo, resize_frames
from rankvideo_cli.videos.sampling import (
    SamplingRefused,
    output_size,
    pair_timestamps,
    sample_count,
    sample_indices,
    smart_resize,
)

CONFIG = SamplingConfig()


def reference_count(total: int, fps: float, *, rate: float = 2.0, low: int = 4, high: int = 32) -> int:
    """REFERENCE.md 1: n = N / F * 2; n = min(min(max(n, 4), 32), N); n = floor(n / 2) * 2."""
    n = total / fps * rate
    n = min(min(max(n, math.ceil(low / 2) * 2), math.floor(high / 2) * 2), total)
    return math.floor(n / 2) * 2


def reference_indices(total: int, count: int) -> list[int]:
    """REFERENCE.md 1: torch.linspace(0, N - 1, n).round().long() (numpy agrees at these sizes)."""
    torch_indices = torch.linspace(0, total - 1, count).round().long().tolist()
    numpy_indices = np.linspace(0, total - 1, count).round().astype(int).tolist()
    assert torch_indices == numpy_indices
    return torch_indices


def reference_size(
    height: int, width: int, *, min_pixels: float = 131072, max_pixels: float = 131072
) -> tuple[int, int]:
    """REFERENCE.md 2 (factor 32; the reference's min_pixels = max_pixels = 131072 by default)."""
    factor = 32
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def reference_resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """REFERENCE.md 2: uint8 -> float32 -> bicubic antialias interpolate -> clamp -> round -> uint8."""
    resized = F.interpolate(frames.contiguous().float(), size=size, mode="bicubic", align_corners=False, antialias=True)
    return resized.clamp(0, 255).round().to(torch.uint8)


# --- frame counts and indices -------------------------------------------------------------------------


def test_worked_example_300_frames_at_30_fps() -> None:
    assert reference_count(300, 30.0) == sample_count(300, 30.0, CONFIG) == 20
    expected = [0, 16, 31, 47, 63, 79, 94, 110, 126, 142, 157, 173, 189, 205, 220, 236, 252, 268, 283, 299]
    assert reference_indices(300, 20) == sample_indices(300, 20) == expected


def test_worked_example_1525_frames_at_25_fps() -> None:
    assert reference_count(1525, 25.0) == sample_count(1525, 25.0, CONFIG) == 32
    indices = sample_indices(1525, 32)
    assert indices == reference_indices(1525, 32)
    assert indices[:3] == [0, 49, 98] and indices[-2:] == [1475, 1524]


def test_worked_example_31_frames_at_24_fps() -> None:
    assert reference_count(31, 24.0) == sample_count(31, 24.0, CONFIG) == 4
    assert reference_indices(31, 4) == sample_indices(31, 4) == [0, 10, 20, 30]


@pytest.mark.parametrize("fps", [1.0, 7.5, 24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0, 60.0, 120.0])
def test_counts_and_indices_match_the_formula_over_many_lengths(fps: float) -> None:
    for total in [2, 3, 4, 5, 7, 16, 31, 32, 33, 64, 100, 241, 300, 799, 1000, 1525, 3001, 18000, 108000]:
        count = sample_count(total, fps, CONFIG)
        assert count == reference_count(total, fps), (total, fps)
        indices = sample_indices(total, count)
        assert indices == torch.linspace(0, total - 1, count).round().long().tolist()
        assert indices[0] == 0 and indices[-1] == total - 1 and len(set(indices)) == count


@pytest.mark.parametrize("total", [0, 1])
def test_fewer_than_two_frames_is_refused_by_qwen_vl_utils(total: int) -> None:
    assert reference_count(total, 25.0) < 2
    with pytest.raises(ValueError):
        sample_count(total, 25.0, CONFIG)


def test_config_changes_reach_smart_nframes() -> None:
    config = SamplingConfig(fps=1.0, min_frames=6, max_frames=10)
    assert sample_count(300, 30.0, config) == reference_count(300, 30.0, rate=1.0, low=6, high=10) == 10
    assert sample_count(30, 30.0, config) == reference_count(30, 30.0, rate=1.0, low=6, high=10) == 6
    assert config.qwen_element() == {"fps": 1.0, "min_frames": 6, "max_frames": 10}
    assert config.fingerprint() != CONFIG.fingerprint()


# --- the torch-free rules equal qwen-vl-utils 0.0.14 and torch, their source of truth ----------------------


def test_frame_count_and_indices_equal_smart_nframes_and_torch_linspace() -> None:
    from qwen_vl_utils import vision_process as qwen_vision

    for config in (CONFIG, SamplingConfig(fps=1.0, min_frames=6, max_frames=64)):
        for fps in (1.0, 2.0, 5.0, 12.5, 24000 / 1001, 24.0, 25.0, 30000 / 1001, 30.0, 50.0, 60.0, 120.0):
            for total in range(1, 5001):
                try:
                    expected = qwen_vision.smart_nframes(config.qwen_element(), total_frames=total, video_fps=fps)
                except ValueError:
                    with pytest.raises(SamplingRefused) as refused:
                        sample_count(total, fps, config)
                    assert refused.value.kind == "too_few_frames"
                    continue
                assert sample_count(total, fps, config) == expected, (total, fps)
                linspace = torch.linspace(0, total - 1, expected).round().long().tolist()
                assert sample_indices(total, expected) == linspace, (total, fps)


def test_smart_resize_equals_qwen_vl_utils_including_its_aspect_ratio_refusal() -> None:
    from qwen_vl_utils import vision_process as qwen_vision

    rng = np.random.default_rng(1)
    sizes = [(int(h), int(w)) for h, w in rng.integers(1, 5000, size=(3000, 2))]
    sizes += [(16, 4096), (4096, 16), (2, 400), (2, 401), (2, 402), (1, 200), (1, 201), (20, 4000)]
    for height, width in sizes:
        for min_pixels, max_pixels in ((131072, 131072), (131072, 786432), (65536, 68812)):
            try:
                expected = qwen_vision.smart_resize(height, width, 32, min_pixels, max_pixels)
            except ValueError:
                with pytest.raises(SamplingRefused) as refused:
                    smart_resize(height, width, 32, min_pixels, max_pixels)
                assert refused.value.kind == "bad_aspect_ratio"
                continue
            assert smart_resize(height, width, 32, min_pixels, max_pixels) == expected, (height, width)


@pytest.mark.parametrize(
    "config",
    [CONFIG, SamplingConfig(total_pixels=32 * 32 * 32 * 32, min_pixels=64 * 32 * 32, max_pixels=128 * 32 * 32)],
    ids=["reference", "total-pixels-binds"],
)
def test_output_size_equals_fetch_video_sizing(config: SamplingConfig) -> None:
    from qwen_vl_utils import vision_process as qwen_vision

    for count in (2, 4, 20, 32, 64):
        for height, width in [(720, 1280), (1280, 720), (480, 640), (240, 320), (108, 192), (4096, 16 * 20)]:
            # fetch_video's own lines for a video element with min_pixels, max_pixels and total_pixels
            max_pixels = max(
                min(qwen_vision.VIDEO_MAX_TOKEN_NUM * 32 * 32, config.total_pixels / count * qwen_vision.FRAME_FACTOR),
                int(config.min_pixels * 1.05),
            )
            max_pixels = min(config.max_pixels, max_pixels)
            expected = qwen_vision.smart_resize(height, width, 32, config.min_pixels, max_pixels)
            assert output_size(height, width, count, config) == expected, (height, width, count)


# --- output size ---------------------------------------------------------------------------------------

SIZE_TABLE = [  # (height, width) -> (height, width), REFERENCE.md 2
    ((720, 1280), (256, 480)),
    ((360, 640), (256, 480)),
    ((1080, 1920), (256, 480)),
    ((1280, 720), (480, 256)),
    ((480, 640), (288, 416)),
    ((240, 320), (320, 448)),
]


@pytest.mark.parametrize(("source", "expected"), SIZE_TABLE)
@pytest.mark.parametrize("count", [2, 4, 20, 32])
def test_output_size_table(source: tuple[int, int], expected: tuple[int, int], count: int) -> None:
    assert reference_size(*source) == expected
    assert output_size(*source, count, CONFIG) == expected


def test_output_size_matches_the_formula_on_random_sizes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(500):
        height, width = (int(value) for value in rng.integers(16, 4000, size=2))
        if max(height, width) / min(height, width) > 200:
            continue
        assert output_size(height, width, 32, CONFIG) == reference_size(height, width), (height, width)


def test_output_size_refuses_aspect_ratios_above_200() -> None:
    assert output_size(2, 400, 4, CONFIG) == reference_size(2, 400)
    with pytest.raises(ValueError, match="aspect ratio"):
        output_size(2, 402, 4, CONFIG)


def test_total_pixels_never_binds_with_the_reference_settings() -> None:
    # fetch_video: max_pixels = max(min(768*32*32, total_pixels / n * 2), 1.05 * min_pixels), then capped
    # by the element's max_pixels (131072): at n = 32 the total_pixels term is 262144, still above it.
    assert CONFIG.total_pixels / 32 * 2 > CONFIG.max_pixels
    tight = SamplingConfig(total_pixels=32 * 32 * 32 * 32, min_pixels=64 * 32 * 32, max_pixels=128 * 32 * 32)
    # Here total_pixels binds: 32 frames leave 65536 per frame, lifted to int(1.05 * min_pixels).
    max_pixels = max(min(768 * 32 * 32, tight.total_pixels / 32 * 2), int(tight.min_pixels * 1.05))
    assert max_pixels == 68812
    expected = reference_size(720, 1280, min_pixels=tight.min_pixels, max_pixels=max_pixels)
    assert output_size(720, 1280, 32, tight) == expected == (192, 320)
    assert output_size(720, 1280, 4, tight) == (256, 480)  # 4 frames: the element's max_pixels binds


# --- timestamps and processor metadata -------------------------------------------------------------


def test_timestamps_for_30_fps_10_seconds() -> None:
    indices = sample_indices(300, sample_count(300, 30.0, CONFIG))
    labels = [f"{value:.1f}" for value in pair_timestamps(indices, 30.0)]
    assert labels == ["0.3", "1.3", "2.4", "3.4", "4.5", "5.5", "6.6", "7.6", "8.7", "9.7"]
    by_hand = [(indices[2 * k] / 30 + indices[2 * k + 1] / 30) / 2 for k in range(10)]
    assert pair_timestamps(indices, 30.0) == by_hand


def test_sampled_video_metadata_uses_the_source_fps() -> None:
    video = SampledVideo(
        path="v.mp4",
        frames=torch.zeros((4, 3, 32, 64), dtype=torch.uint8),
        source_fps=24.0,
        total_frames=31,
        frame_indices=[0, 10, 20, 30],
        source_size=(32, 64),
    )
    assert video.processor_metadata() == {
        "fps": 24.0,
        "frames_indices": [0, 10, 20, 30],
        "total_num_frames": 31,
    }
    assert video.pair_timestamps == [(0 + 10 / 24) / 2, (20 / 24 + 30 / 24) / 2]
    assert video.size == (32, 64)


# --- resize ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((360, 640), (256, 480)),
        ((240, 320), (320, 448)),
        ((1080, 1920), (256, 480)),
        ((241, 321), (320, 448)),
    ],
)
def test_resize_is_bit_exact_with_the_explicit_formula(source: tuple[int, int], target: tuple[int, int]) -> None:
    generator = torch.Generator().manual_seed(sum(source))
    # Random noise plus hard edges: the clamp matters where bicubic overshoots.
    frames = torch.randint(0, 256, (3, 3, *source), dtype=torch.uint8, generator=generator)
    frames[:, :, : source[0] // 3] = 255
    frames[:, :, source[0] // 3 : source[0] // 2] = 0
    expected = reference_resize(frames, target)
    assert torch.equal(resize_frames(frames, target), expected)
    # The decoder resizes one frame at a time, from an HWC buffer viewed as CHW (what decord hands over).
    one_by_one = torch.stack(
        [resize_frames(frame.permute(1, 2, 0).contiguous().permute(2, 0, 1), target) for frame in frames]
    )
    assert torch.equal(one_by_one, expected)


@pytest.mark.parametrize("layout", ["contiguous", "hwc-view"])
@pytest.mark.parametrize(
    ("source", "target"), [((360, 640), (256, 480)), ((241, 321), (320, 448)), ((64, 4096), (32, 2048))]
)
def test_resize_is_torchvisions_bit_for_bit(source: tuple[int, int], target: tuple[int, int], layout: str) -> None:
    """The call fetch_video makes, in torchvision itself, on one frame and on a batch, as the decoder lays them out."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as tv_functional

    generator = torch.Generator().manual_seed(sum(source) + len(layout))
    frames = torch.randint(0, 256, (2, 3, *source), dtype=torch.uint8, generator=generator)
    frames[:, :, : source[0] // 4] = 255  # hard edges: bicubic overshoots, the clamp matters
    if layout == "hwc-view":
        frames = frames.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    for tensor in (frames, frames[0]):
        expected = tv_functional.resize(tensor, list(target), interpolation=InterpolationMode.BICUBIC, antialias=True)
        assert torch.equal(resize_frames(tensor, target), expected)


def test_resize_at_equal_size_is_a_no_op() -> None:
    frames = torch.randint(0, 256, (2, 3, 256, 480), dtype=torch.uint8)
    assert torch.equal(resize_frames(frames, (256, 480)), frames)


# --- rotation --------------------------------------------------------------------------------------------


def test_rotation_follows_the_reference_rule() -> None:
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)  # HWC, 2 rows x 3 columns
    assert rotation_turns(0) == 0 and rotate_rgb(image, 0) is image
    assert np.array_equal(rotate_rgb(image, -90), np.rot90(image, k=-1))
    assert np.array_equal(rotate_rgb(image, 90), np.rot90(image, k=1))
    assert np.array_equal(rotate_rgb(image, 180), np.rot90(image, k=2))
    assert np.array_equal(rotate_rgb(image, -180), np.rot90(image, k=2))
    # -90 (clockwise display): the first column, read bottom-up, becomes the first row.
    assert np.array_equal(rotate_rgb(image, -90)[0], image[::-1, 0])
    assert rotate_rgb(image, 90).shape == (3, 2, 3)
