"""How many (query, video) pairs fit in one forward: a memory model of Qwen3-VL scoring, and the automatic
batch size that the scorer uses on a GPU when `--batch-size` is not given.

The model over-estimates on purpose (every transient summed, eager attention scores and a KV cache counted),
so the batch it picks holds for any attention implementation. `benchmarks/gpu_throughput.py` prints its
bound next to the measured peak of every GPU run, which is how to check it.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from rankvideo_cli.videos.config import SamplingConfig

GIB = 1024**3
# Fixed headroom besides the pairs: CUDA context, cuBLAS/cuDNN workspaces, allocator fragmentation.
BATCH_RESERVE_BYTES = 3 * GIB
BATCH_FREE_FRACTION = 0.85
MAX_AUTO_BATCH = 32
# Pairs per forward where free device memory is not known (the CPU): large enough to amortise a forward's
# fixed costs, small enough that a 2k-token batch stays a few GB.
CPU_BATCH_SIZE = 8
# Text around the video in the RankVideo prompt: the system prompt, the template and a long query
# (248 tokens for "a dog surfing"; REFERENCE.md section 4), with room for queries of ~130 more tokens.
PROMPT_TEXT_TOKENS = 384
# With the training prompt's prefix cache (`prefix_cache.py`) a forward holds only the queries' suffixes
# (`Query: ...` to `<answer>`: 27 template tokens and the query; 192 leaves room for ~165-token queries), so many
# more of them fit in one forward than whole prompts.
SUFFIX_TEXT_TOKENS = 192
CPU_SUFFIX_BATCH_SIZE = 32
MAX_AUTO_SUFFIX_BATCH = 64


@dataclass(frozen=True)
class ModelShape:
    """The dimensions that set a Qwen3-VL model's cost; `config()` turns them into a transformers config."""

    name: str
    text_hidden: int
    text_layers: int
    text_heads: int
    text_kv_heads: int
    head_dim: int
    text_intermediate: int
    vocab: int
    rms_eps: float
    rope_theta: float
    mrope_section: tuple[int, int, int]
    vision_depth: int
    vision_hidden: int
    vision_intermediate: int
    vision_heads: int
    patch: int
    temporal_patch: int
    merge: int
    vision_position_embeddings: int
    deepstack_layers: tuple[int, ...]
    vision_act: str = "gelu_pytorch_tanh"
    init_std: float = 0.02  # transformers' normal init; Qwen3-VL's initializer_range

    def config(self) -> Any:
        """A `Qwen3VLConfig` with these dimensions and Qwen3-VL's special-token ids (untied embeddings)."""
        from transformers import Qwen3VLConfig

        return Qwen3VLConfig(
            text_config={
                "hidden_size": self.text_hidden,
                "num_hidden_layers": self.text_layers,
                "num_attention_heads": self.text_heads,
                "num_key_value_heads": self.text_kv_heads,
                "head_dim": self.head_dim,
                "intermediate_size": self.text_intermediate,
                "vocab_size": self.vocab,
                "rms_norm_eps": self.rms_eps,
                "max_position_embeddings": 262144,
                "hidden_act": "silu",
                "attention_bias": False,
                "initializer_range": self.init_std,
                "rope_parameters": {
                    "rope_type": "default",
                    "rope_theta": self.rope_theta,
                    "mrope_section": list(self.mrope_section),
                    "mrope_interleaved": True,
                },
            },
            vision_config={
                "depth": self.vision_depth,
                "hidden_size": self.vision_hidden,
                "intermediate_size": self.vision_intermediate,
                "num_heads": self.vision_heads,
                "patch_size": self.patch,
                "temporal_patch_size": self.temporal_patch,
                "spatial_merge_size": self.merge,
                "out_hidden_size": self.text_hidden,
                "num_position_embeddings": self.vision_position_embeddings,
                "deepstack_visual_indexes": list(self.deepstack_layers),
                "hidden_act": self.vision_act,
                "initializer_range": self.init_std,
            },
            tie_word_embeddings=False,
        )


# ModelShape's fields read as they are from a Qwen3-VL config: field -> the attribute of the text config ...
_FROM_TEXT_CONFIG = {
    "text_hidden": "hidden_size",
    "text_layers": "num_hidden_layers",
    "text_heads": "num_attention_heads",
    "text_kv_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "text_intermediate": "intermediate_size",
    "vocab": "vocab_size",
    "rms_eps": "rms_norm_eps",
    "init_std": "initializer_range",
}
# ... and of the vision config
_FROM_VISION_CONFIG = {
    "vision_depth": "depth",
    "vision_hidden": "hidden_size",
    "vision_intermediate": "intermediate_size",
    "vision_heads": "num_heads",
    "patch": "patch_size",
    "temporal_patch": "temporal_patch_size",
    "merge": "spatial_merge_size",
    "vision_position_embeddings": "num_position_embeddings",
    "vision_act": "hidden_act",
}


def shape_from_config(config: Any, name: str = "loaded") -> ModelShape:
    """The shape of a loaded model (its `Qwen3VLConfig`), so `auto_batch_size` applies to real checkpoints."""
    text, vision = config.text_config, config.vision_config
    rope = text.rope_parameters or {}
    return ModelShape(
        name=name,
        **{field: getattr(text, attribute) for field, attribute in _FROM_TEXT_CONFIG.items()},
        **{field: getattr(vision, attribute) for field, attribute in _FROM_VISION_CONFIG.items()},
        rope_theta=float(rope.get("rope_theta", 0.0)),
        mrope_section=tuple(rope.get("mrope_section", (0, 0, 0))),
        deepstack_layers=tuple(vision.deepstack_visual_indexes),
    )


# Qwen3-VL-8B-Instruct, RankVideo's base (REFERENCE.md section 7).
QWEN3_VL_8B = ModelShape(
    name="8b",
    text_hidden=4096,
    text_layers=36,
    text_heads=32,
    text_kv_heads=8,
    head_dim=128,
    text_intermediate=12288,
    vocab=151936,
    rms_eps=1e-6,
    rope_theta=5_000_000.0,
    mrope_section=(24, 20, 20),
    vision_depth=27,
    vision_hidden=1152,
    vision_intermediate=4304,
    vision_heads=16,
    patch=16,
    temporal_patch=2,
    merge=2,
    vision_position_embeddings=2304,
    deepstack_layers=(8, 16, 24),
)


def element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def pair_activation_bytes(
    tokens_per_pair: int, shape: ModelShape, dtype: torch.dtype, *, logit_positions: int = 1
) -> int:
    """Upper bound on the device memory one pair in a batch adds during a no-grad scoring forward.

    Counted for one sequence of T tokens (element size e, fp32 temporaries at 4 bytes), all terms added
    even where they are not alive at the same time:
    - resident for the whole forward: input embeddings and residual stream (2 T H e), DeepStack visual
      features (one T x H copy per DeepStack layer, taking all T tokens as visual), rotary cos/sin (2 T d e),
      the 4D attention mask (T^2 e);
    - a KV cache in case the caller leaves `use_cache` on (2 L T kv d e);
    - one decoder layer's transients: q/k/v, k/v repeated to all heads, fp32 copies in RMSNorm and q/k norm,
      attention output and o_proj (about 8 T H e + 3 T H 4), the MLP's gate, up, act and product (4 T I e);
    - attention scores materialised as eager attention (or SDPA's math fallback) does: scores and
      probabilities in e, softmax in fp32 (heads T^2 (2e + 4)) -- the largest term at 2k tokens;
    - logits at `logit_positions` positions, with fp32 copies for log-softmax (P V (e + 8)); 1 with
      `logits_to_keep=1`, T without it (then the largest term: 3.3 GB per 2.2k-token pair at full vocab).
    """
    e = element_size(dtype)
    tokens, hidden = tokens_per_pair, shape.text_hidden
    resident = 2 * tokens * hidden * e + len(shape.deepstack_layers) * tokens * hidden * e
    resident += 2 * tokens * shape.head_dim * e + tokens * tokens * e
    kv_cache = 2 * shape.text_layers * tokens * shape.text_kv_heads * shape.head_dim * e
    layer = 8 * tokens * hidden * e + 3 * tokens * hidden * 4 + 4 * tokens * shape.text_intermediate * e
    scores = shape.text_heads * tokens * tokens * (2 * e + 4)
    logits = logit_positions * shape.vocab * (e + 8)
    return resident + kv_cache + layer + scores + logits


def vision_activation_bytes(patches: int, shape: ModelShape, dtype: torch.dtype) -> int:
    """Upper bound on one vision-tower pass's transients (one video at a time): block activations in e,
    fp32 rotary copies of q and k, every DeepStack feature and the merged output."""
    e = element_size(dtype)
    vision = shape.vision_hidden
    block = patches * (6 * vision + 3 * shape.vision_intermediate) * e + 4 * patches * vision * 4
    merged_tokens = patches // shape.merge**2
    features = (1 + len(shape.deepstack_layers)) * merged_tokens * shape.text_hidden * e
    return block + features + 2 * patches * vision * shape.merge**2 * e


def auto_batch_size(
    free_bytes: int,
    tokens_per_pair: int,
    shape: ModelShape,
    dtype: torch.dtype,
    *,
    logit_positions: int = 1,
    max_batch: int = MAX_AUTO_BATCH,
) -> int:
    """Pairs per forward that fit in `free_bytes` of device memory left after the weights are loaded.

    batch = floor((0.85 * free - 3 GiB - one vision pass) / pair_activation_bytes), clamped to [1, max_batch].
    Pass `logit_positions=tokens` when logits are kept at every position. The 15% margin and the 3 GiB
    reserve cover the CUDA context, library workspaces and allocator fragmentation. Batching beyond a few
    pairs buys little anyway: one 2k-token pair already gives the matmuls thousands of rows.
    """
    if tokens_per_pair <= 0:
        raise ValueError(f"tokens_per_pair must be positive, got {tokens_per_pair}")
    patches = tokens_per_pair * shape.merge**2  # at most every token is a merged vision token
    usable = BATCH_FREE_FRACTION * free_bytes - BATCH_RESERVE_BYTES
    usable -= vision_activation_bytes(patches, shape, dtype)
    per_pair = pair_activation_bytes(tokens_per_pair, shape, dtype, logit_positions=logit_positions)
    return int(max(1, min(max_batch, usable // per_pair)))


def prefix_cache_bytes(prefix_tokens: int, shape: ModelShape, dtype: torch.dtype) -> int:
    """One video's cached prefix: keys and values of every layer (2 L kv d P e); ~310 MB for Qwen3-VL-8B in
    bf16 at 2.1k tokens."""
    return 2 * shape.text_layers * shape.text_kv_heads * shape.head_dim * prefix_tokens * element_size(dtype)


def suffix_forward_bytes(
    batch: int, suffix_tokens: int, prefix_tokens: int, shape: ModelShape, dtype: torch.dtype
) -> int:
    """Upper bound on one packed forward of `batch` suffixes against a cached prefix (T = batch x suffix
    tokens, K = prefix + T keys), all terms added as in `pair_activation_bytes`:
    - resident: the packed tokens' embeddings and residual stream (2 T H e), rotary cos/sin (2 T d e), the
      4D mask (T K e);
    - one layer's transients: the prefix's keys and values concatenated with the suffixes' (2 K kv d e) and
      repeated to every head (2 K heads d e) -- the prefix is copied once per layer here, not once per query --
      q/k/v, norms and projections (8 T H e + 3 T H 4), the MLP (4 T I e);
    - attention scores over all K keys (heads T K (2e + 4));
    - logits at each suffix's last token with fp32 copies (batch V (e + 8)).
    """
    e = element_size(dtype)
    tokens = batch * suffix_tokens
    keys = prefix_tokens + tokens
    hidden = shape.text_hidden
    resident = 2 * tokens * hidden * e + 2 * tokens * shape.head_dim * e + tokens * keys * e
    concatenated = 2 * keys * shape.head_dim * (shape.text_kv_heads + shape.text_heads) * e
    layer = 8 * tokens * hidden * e + 3 * tokens * hidden * 4 + 4 * tokens * shape.text_intermediate * e
    scores = shape.text_heads * tokens * keys * (2 * e + 4)
    logits = batch * shape.vocab * (e + 8)
    return resident + concatenated + layer + scores + logits


def auto_suffix_batch_size(
    free_bytes: int,
    prefix_tokens: int,
    shape: ModelShape,
    dtype: torch.dtype,
    *,
    suffix_tokens: int = SUFFIX_TEXT_TOKENS,
    max_batch: int = MAX_AUTO_SUFFIX_BATCH,
) -> int:
    """Suffixes per forward with the prefix cache: the largest batch whose packed forward fits in what is left
    of `free_bytes` once the reserve, one vision pass and the cached prefix are counted. The prefix's own
    forward (one whole prompt, `pair_activation_bytes`) must fit as well, or the batch is 1."""
    if prefix_tokens <= 0 or suffix_tokens <= 0:
        raise ValueError(f"token counts must be positive, got prefix {prefix_tokens}, suffix {suffix_tokens}")
    patches = prefix_tokens * shape.merge**2
    usable = BATCH_FREE_FRACTION * free_bytes - BATCH_RESERVE_BYTES
    usable -= vision_activation_bytes(patches, shape, dtype) + prefix_cache_bytes(prefix_tokens, shape, dtype)
    if pair_activation_bytes(prefix_tokens, shape, dtype) > usable:
        return 1
    batch = 1
    while batch < max_batch and suffix_forward_bytes(batch + 1, suffix_tokens, prefix_tokens, shape, dtype) <= usable:
        batch += 1
    return batch


def max_prompt_tokens(sampling: SamplingConfig) -> int:
    """The longest prompt a reranker's `sampling` can produce: its video-token budget, plus the text around it."""
    return sampling.video_token_budget() + PROMPT_TEXT_TOKENS


def default_batch_size(
    model: Any,
    device: torch.device,
    dtype: torch.dtype,
    *,
    prefix_cache: bool = False,
    sampling: SamplingConfig | None = None,
) -> int:
    """`CPU_BATCH_SIZE` off CUDA; on CUDA, `auto_batch_size` from the device's free memory now (weights loaded)
    for the longest prompt `sampling` (default: RankVideo's) produces. With the prefix cache, suffixes per
    forward (`CPU_SUFFIX_BATCH_SIZE`, or `auto_suffix_batch_size` with that longest prompt as the prefix)."""
    if device.type != "cuda":
        return CPU_SUFFIX_BATCH_SIZE if prefix_cache else CPU_BATCH_SIZE
    from rankvideo_cli.videos.config import SamplingConfig

    sampling = sampling or SamplingConfig()
    shape = shape_from_config(model.config)
    free_bytes, _total = torch.cuda.mem_get_info(device)
    longest = max_prompt_tokens(sampling)
    if prefix_cache:
        return auto_suffix_batch_size(free_bytes, longest, shape, dtype)
    return auto_batch_size(free_bytes, longest, shape, dtype)


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is the accelerator running out of memory (torch's own type, or the RuntimeError text
    older torch versions and other backends raise)."""
    oom_type = getattr(torch, "OutOfMemoryError", None) or getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(error, oom_type):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def release_accelerator_memory() -> None:
    """Drop what an out-of-memory forward left behind before retrying with fewer pairs."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
