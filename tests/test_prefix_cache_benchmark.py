"""benchmarks/prefix_cache.py's profile: what it counts as attention (by how it was called) and linear time."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("prefix_cache_benchmark", REPO / "benchmarks" / "prefix_cache.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


pc = _load_benchmark()


def test_op_seconds_sorts_attention_by_how_it_was_called_and_restores_torch() -> None:
    attention, linear = F.scaled_dot_product_attention, F.linear
    query = torch.randn(1, 2, 16, 8)
    mask = torch.ones(16, 16, dtype=torch.bool).tril()
    with pc.op_seconds() as seconds:
        masked = F.scaled_dot_product_attention(query, query, query, attn_mask=mask)
        causal = F.scaled_dot_product_attention(query, query, query, is_causal=True)
        F.scaled_dot_product_attention(query, query, query)
        F.linear(query, torch.randn(4, 8))
    assert set(seconds) == {"attention_masked", "attention_causal", "attention_plain", "linear"}
    assert all(value > 0 for value in seconds.values())
    # the wrappers return what torch returns, and are gone afterwards
    torch.testing.assert_close(masked, causal)
    assert F.scaled_dot_product_attention is attention and F.linear is linear


def test_op_seconds_restores_torch_when_the_block_fails() -> None:
    attention = F.scaled_dot_product_attention
    with pytest.raises(RuntimeError, match="boom"), pc.op_seconds():
        raise RuntimeError("boom")
    assert F.scaled_dot_product_attention is attention


def test_masked_vs_causal_attention_times_both_calls() -> None:
    result = pc.masked_vs_causal_attention(2, 2, 32, 8, repeats=1)
    assert result["shape"] == [2, 2, 32, 8]
    assert result["masked_s"] > 0 and result["causal_s"] > 0
    assert result["ratio"] == pytest.approx(result["masked_s"] / result["causal_s"])


def test_attention_share_is_the_flop_models() -> None:
    flops = pc.lm_flops(pc.QWEN3_VL_8B, 2121, kept_logits=1)
    share = pc.attention_share(pc.QWEN3_VL_8B, 2121)
    assert share == pytest.approx(flops["lm_attention"] / sum(flops.values()))
    # the 8B model's attention is a small share at ~2.1k tokens, the mid shape's a larger one at ~1.1k
    assert 0.03 < share < 0.06
    assert 0.10 < pc.attention_share(pc.MID, 1095) < 0.20
