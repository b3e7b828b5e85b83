"""Prefix reuse for the training prompt: the video's keys and values computed once, every query's suffix
scored against them.

With the training prompt (`training_prompt.py`) the system turn and the video come before the query, so their
keys and values (one tensor pair per decoder layer) are the same for every query of a video. `compute_prefix`
runs the prefix through the model once; `score_suffixes` then scores B queries in one forward of only their
suffix tokens (~30-60 each):

- **Packed, not padded.** The B suffixes are laid end to end as one sequence, with a mask under which each
  suffix token sees the whole prefix and the earlier tokens of its own suffix only. No suffix is padded, so
  padding cannot leak into any score, and the prefix is shared by the B queries without a copy per query: the
  batch dimension is 1. Each layer concatenates the prefix's keys and values with the suffix tokens' (one
  transient copy of the prefix per layer and forward, whatever B is; `SharedPrefix.update`), and the cache is
  never written, so the next chunk sees the prefix unchanged.
- **Positions continue from the prefix.** Qwen3-VL's multimodal rotary positions give text after a video the
  next position on all three axes (`get_rope_index`); each suffix starts there again.
- **Scores at each suffix's last token** (`logits_to_keep` as indices): the LM head runs over B positions.

The mask is an explicit 4D mask, which SDPA and eager attention take; flash attention takes none, so the
prefix cache is refused with it before the model loads (`loading.check_prompt_options`), and it picks sdpa
where flash attention would be the default.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from functools import cache
from typing import Any

import torch


@dataclass
class CachedPrefix:
    """One video's prefix through the language model: per-layer keys and values (1, kv_heads, P, head_dim)."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int
    next_position: int  # the rotary position of the first token after the prefix, on all three axes


class SharedPrefix:
    """A read-only stand-in for a transformers `Cache` during a suffix forward: each layer attends to the
    prefix's keys and values followed by the suffix tokens' own, and nothing is stored."""

    def __init__(self, prefix: CachedPrefix) -> None:
        self.prefix = prefix

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys = torch.cat([self.prefix.keys[layer_idx], key_states], dim=-2)
        values = torch.cat([self.prefix.values[layer_idx], value_states], dim=-2)
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.prefix.length


@cache
def _cache_argument(forward: Any) -> str:
    """transformers 5.24 renamed the model's `past_key_values` argument `cache` (the old name warns)."""
    parameters = inspect.signature(forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def cache_argument(model: Any) -> str:
    return _cache_argument(type(model).forward)


def compute_prefix(
    model: Any,
    prefix_ids: list[int],
    prefix_mm_token_type_ids: list[int],
    video_grid_thw: torch.Tensor,
    features: Any,
    device: torch.device,
) -> CachedPrefix:
    """Run the prefix (system turn, user header, video) once and keep every layer's keys and values."""
    from transformers import DynamicCache
    from transformers.cache_utils import CacheLayerMixin

    input_ids = torch.tensor([prefix_ids], dtype=torch.long, device=device)
    mm_token_type_ids = torch.tensor([prefix_mm_token_type_ids], dtype=torch.long, device=device)
    grid = video_grid_thw.to(device)
    position_ids, _deltas = model.model.get_rope_index(input_ids, mm_token_type_ids, video_grid_thw=grid)
    store = DynamicCache(config=model.config)
    with torch.inference_mode():
        model(
            input_ids=input_ids,
            mm_token_type_ids=mm_token_type_ids,
            video_grid_thw=grid,
            mm_encoder_outputs={"video": features},
            position_ids=position_ids,
            use_cache=True,
            logits_to_keep=1,
            **{cache_argument(model): store},
        )
    keys: list[torch.Tensor] = []
    values: list[torch.Tensor] = []
    for layer in store.layers:  # Qwen3-VL: full attention in every layer, each one keys and values
        if not isinstance(layer, CacheLayerMixin) or layer.keys is None or layer.values is None:
            raise TypeError(f"a prefix can be cached only from attention layers, not {type(layer).__name__}")
        keys.append(layer.keys)
        values.append(layer.values)
    # the prefix ends with text (`<|vision_end|>`), whose three positions are equal: the next token follows it
    return CachedPrefix(
        keys=keys, values=values, length=len(prefix_ids), next_position=int(position_ids[:, 0, -1].max()) + 1
    )


@dataclass
class PackedSuffixes:
    input_ids: torch.Tensor  # (1, T): the suffixes end to end
    position_ids: torch.Tensor  # (3, 1, T)
    attention_mask: torch.Tensor  # (1, 1, T, P + T): bool for SDPA, additive float for eager
    last_positions: torch.Tensor  # (B,): each suffix's last token in the packed sequence


def pack_suffixes(
    suffixes: list[list[int]], prefix: CachedPrefix, attn_implementation: str, dtype: torch.dtype, device: torch.device
) -> PackedSuffixes:
    """The packed sequence, its rotary positions and the mask: every token sees the prefix and its own suffix's
    earlier tokens."""
    lengths = torch.tensor([len(suffix) for suffix in suffixes], dtype=torch.long)
    if bool((lengths == 0).any()):
        raise ValueError("an empty suffix cannot be scored")
    total = int(lengths.sum())
    segment = torch.repeat_interleave(torch.arange(len(suffixes)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    offset = torch.arange(total) - starts[segment]
    positions = (prefix.next_position + offset).view(1, 1, total).expand(3, 1, total)
    own = (segment[:, None] == segment[None, :]) & (offset[:, None] >= offset[None, :])
    allowed = torch.cat([torch.ones(total, prefix.length, dtype=torch.bool), own], dim=1)[None, None]
    if attn_implementation == "eager":
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    else:
        mask = allowed
    flat = [token for suffix in suffixes for token in suffix]
    return PackedSuffixes(
        input_ids=torch.tensor([flat], dtype=torch.long, device=device),
        position_ids=positions.to(device),
        attention_mask=mask.to(device),
        last_positions=(starts + lengths - 1).to(device),
    )


def suffix_logprobs(
    model: Any, suffixes: list[list[int]], prefix: CachedPrefix, attn_implementation: str, device: torch.device
) -> torch.Tensor:
    """(B, V) float32 log-softmax at each suffix's last token, every suffix attending to the shared prefix."""
    dtype = prefix.keys[0].dtype
    packed = pack_suffixes(suffixes, prefix, attn_implementation, dtype, device)
    with torch.inference_mode():
        output = model(
            input_ids=packed.input_ids,
            attention_mask=packed.attention_mask,
            position_ids=packed.position_ids,
            use_cache=True,
            logits_to_keep=packed.last_positions,
            **{cache_argument(model): SharedPrefix(prefix)},
        )
    return torch.log_softmax(output.logits[0].float(), dim=-1)
