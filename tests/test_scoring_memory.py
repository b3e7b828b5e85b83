"""The automatic batch size: the memory model's numbers for the 8B shape, and what the scorer picks."""

from __future__ import annotations

import pytest
import torch

from rankvideo_cli.scoring import memory
from rankvideo_cli.scoring.memory import (
    CPU_BATCH_SIZE,
    GIB,
    MAX_AUTO_BATCH,
    auto_batch_size,
    max_prompt_tokens,
    pair_activation_bytes,
    shape_from_config,
)
from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
from rankvideo_cli.videos.config import SamplingConfig

PROMPT_8B = 2168  # REFERENCE.md section 4: 32 frames at 256x480, "a dog surfing"


@pytest.fixture(scope="module")
def shape_8b() -> memory.ModelShape:
    shape = memory.QWEN3_VL_8B
    # read back through a real transformers config, as a loaded checkpoint's shape is
    assert shape_from_config(shape.config(), name="8b") == shape
    return shape


def test_per_pair_bound_for_the_8b_shape(shape_8b: memory.ModelShape) -> None:
    assert pair_activation_bytes(PROMPT_8B, shape_8b, torch.bfloat16) / 1e9 == pytest.approx(2.09, abs=0.01)
    every_position = pair_activation_bytes(PROMPT_8B, shape_8b, torch.bfloat16, logit_positions=PROMPT_8B)
    assert every_position / 1e9 == pytest.approx(5.38, abs=0.01)


@pytest.mark.parametrize(("card_gb", "expected"), [(24, 1), (40, 6), (80, 23), (141, MAX_AUTO_BATCH)])
def test_auto_batch_size_by_card(shape_8b: memory.ModelShape, card_gb: int, expected: int) -> None:
    weights = 17_534_247_392  # the 8B model's 8.767e9 parameters in bf16
    free = card_gb * 10**9 - weights - GIB  # what is left once the CUDA context and the weights are in
    assert auto_batch_size(free, PROMPT_8B, shape_8b, torch.bfloat16) == expected


def test_the_longest_default_prompt() -> None:
    sampling = SamplingConfig()
    # 16 frame pairs at the 131072-pixel budget (128 tokens each) and the text around them
    assert max_prompt_tokens(sampling) == 16 * 128 + 384 > PROMPT_8B


def test_the_scorer_uses_the_cpu_batch_without_a_gpu(tiny_loaded) -> None:
    assert Qwen3VLScorer.from_loaded(tiny_loaded).batch_size == CPU_BATCH_SIZE
    assert Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=3).batch_size == 3


def test_the_scorer_sizes_its_batch_from_free_gpu_memory(tiny_loaded, monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[torch.device] = []

    def mem_get_info(device: torch.device) -> tuple[int, int]:
        asked.append(device)
        return 10 * GIB, 80 * GIB

    monkeypatch.setattr(torch.cuda, "mem_get_info", mem_get_info)
    cuda = torch.device("cuda", 0)
    shape = shape_from_config(tiny_loaded.model.config)
    sampling = SamplingConfig()
    tokens = max_prompt_tokens(sampling)
    expected = auto_batch_size(10 * GIB, tokens, shape, torch.float32)
    assert memory.default_batch_size(tiny_loaded.model, cuda, torch.float32) == expected > 1
    assert asked == [cuda]
    assert 1 <= auto_batch_size(4 * GIB, tokens, shape, torch.float32) < expected
