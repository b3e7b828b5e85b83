"""RankVideo's shape on paper (issue 6): parameter counts, analytic FLOPs per pair, weight bytes, and the
analytic plan (the time floor at an assumed matmul rate, the memory model's batch sizes) that needs no device.
Since issue 35 the plan also covers Qwen3-VL-Reranker 2B and 8B at MultiVENT's shapes (`reranker_plan`).

`gpu_throughput.py` measures against these; `python benchmarks/gpu_throughput.py --plan` prints the plan.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from rankvideo_cli.scoring.memory import (  # the memory model and batch rule the scorer itself uses
    GIB,
    QWEN3_VL_8B,
    ModelShape,
    auto_batch_size,
    auto_suffix_batch_size,
    element_size,
    max_prompt_tokens,
    pair_activation_bytes,
    prefix_cache_bytes,
    vision_activation_bytes,
)

# ----------------------------------------------------------------------------------------------------
# Model shapes, parameter counts and analytic FLOPs
# ----------------------------------------------------------------------------------------------------


# Qwen's real vocabulary (the prompt's token ids need it); everything else shrunk so a CPU run takes seconds.
TINY = ModelShape(
    name="tiny",
    text_hidden=64,
    text_layers=2,
    text_heads=4,
    text_kv_heads=2,
    head_dim=16,
    text_intermediate=128,
    vocab=151936,
    rms_eps=1e-6,
    rope_theta=5_000_000.0,
    mrope_section=(4, 2, 2),
    vision_depth=2,
    vision_hidden=32,
    vision_intermediate=64,
    vision_heads=2,
    patch=16,
    temporal_patch=2,
    merge=2,
    vision_position_embeddings=2304,
    deepstack_layers=(0, 1),
    # wider than the default so that a tiny random model's scores depend visibly on query and video,
    # and the fast-vs-reference comparison compares something (as rankvideo's own tiny-random does)
    init_std=0.1,
)

SHAPES = {shape.name: shape for shape in (QWEN3_VL_8B, TINY)}

# Qwen3-VL-2B (Qwen3-VL-Reranker-2B's base): the 8B's layout at about a quarter of its width. Its LM head is its
# embedding matrix (tied), which `weight_bytes` counts once; `config()` builds it untied, as for every shape.
QWEN3_VL_2B = ModelShape(
    name="2b",
    text_hidden=2048,
    text_layers=28,
    text_heads=16,
    text_kv_heads=8,
    head_dim=128,
    text_intermediate=6144,
    vocab=151936,
    rms_eps=1e-6,
    rope_theta=5_000_000.0,
    mrope_section=(24, 20, 20),
    vision_depth=24,
    vision_hidden=1024,
    vision_intermediate=4096,
    vision_heads=16,
    patch=16,
    temporal_patch=2,
    merge=2,
    vision_position_embeddings=2304,
    deepstack_layers=(5, 11, 17),
)
TIED_EMBEDDINGS = frozenset({QWEN3_VL_2B.name})
# Qwen3-VL-Reranker-2B and -8B have their base models' shapes
RERANKER_SHAPES = {shape.name: shape for shape in (QWEN3_VL_2B, QWEN3_VL_8B)}


def parameter_counts(shape: ModelShape) -> dict[str, int]:
    """Parameters per part of the model, from the shape alone (tests check this against a built model)."""
    hidden, heads, kv_heads, head_dim = (
        shape.text_hidden,
        shape.text_heads,
        shape.text_kv_heads,
        shape.head_dim,
    )
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2  # q, o and k, v: no biases
    mlp = 3 * hidden * shape.text_intermediate  # gate, up, down
    layer_norms = 2 * hidden + 2 * head_dim  # input and post-attention RMSNorm, q_norm and k_norm

    vision = shape.vision_hidden
    block = (vision * 3 * vision + 3 * vision) + (vision * vision + vision)  # qkv and proj, with biases
    block += (vision * shape.vision_intermediate + shape.vision_intermediate) + (
        shape.vision_intermediate * vision + vision
    )
    block += 2 * 2 * vision  # two LayerNorms
    merged = vision * shape.merge**2
    merger_linears = (merged * merged + merged) + (merged * shape.text_hidden + shape.text_hidden)
    mergers = (merger_linears + 2 * vision) + len(shape.deepstack_layers) * (merger_linears + 2 * merged)
    patch_inputs = 3 * shape.temporal_patch * shape.patch**2
    return {
        "lm_layers": shape.text_layers * (attention + mlp + layer_norms),
        "lm_final_norm": hidden,
        "lm_embedding": shape.vocab * hidden,
        "lm_head": shape.vocab * hidden,
        "vision_patch_embed": patch_inputs * vision + vision,
        "vision_position_embed": shape.vision_position_embeddings * vision,
        "vision_blocks": shape.vision_depth * block,
        "vision_mergers": mergers,
    }


def lm_matmul_parameters(shape: ModelShape) -> int:
    """Weights of the language model's matmuls, embedding and head excluded (6.95e9 for the 8B shape)."""
    hidden, head_dim = shape.text_hidden, shape.head_dim
    per_layer = hidden * head_dim * (2 * shape.text_heads + 2 * shape.text_kv_heads)
    per_layer += 3 * hidden * shape.text_intermediate
    return shape.text_layers * per_layer


@dataclass(frozen=True)
class VideoGrid:
    """The vision tower's grid for one video: temporal patches and spatial patches (before merging)."""

    temporal: int
    height: int
    width: int

    @property
    def patches(self) -> int:
        return self.temporal * self.height * self.width

    def merged_tokens(self, merge: int) -> int:
        return self.patches // merge**2


def grid_for(frames: int, height: int, width: int, shape: ModelShape) -> VideoGrid:
    """Grid of `frames` frames of height x width pixels (frame count padded up to the temporal patch)."""
    temporal = math.ceil(frames / shape.temporal_patch)
    return VideoGrid(temporal, height // shape.patch, width // shape.patch)


def vision_flops(shape: ModelShape, grid: VideoGrid) -> dict[str, float]:
    """FLOPs of one vision-tower pass over one video (2 per multiply-add)."""
    vision, patches = shape.vision_hidden, grid.patches
    block_matmul = 4 * vision * vision + 2 * vision * shape.vision_intermediate
    merged = vision * shape.merge**2
    merger_matmul = merged * merged + merged * shape.text_hidden
    tokens = grid.merged_tokens(shape.merge)
    per_slice = grid.height * grid.width  # attention runs within each temporal slice, not across the video
    return {
        "vision_matmul": 2.0
        * patches
        * (shape.vision_depth * block_matmul + 3 * shape.temporal_patch * shape.patch**2 * vision)
        + 2.0 * tokens * merger_matmul * (1 + len(shape.deepstack_layers)),
        # QK^T and AV over full (non-causal) slices
        "vision_attention": 4.0 * per_slice**2 * vision * grid.temporal * shape.vision_depth,
    }


def lm_flops(shape: ModelShape, prompt_tokens: int, kept_logits: int) -> dict[str, float]:
    """FLOPs of one language-model pass over one prompt, with the LM head on `kept_logits` positions."""
    return {
        "lm_matmul": 2.0 * lm_matmul_parameters(shape) * prompt_tokens,
        # causal: QK^T and AV each cost T^2 * d (half of the full 2 * T^2 * d)
        "lm_attention": 2.0 * prompt_tokens**2 * shape.text_heads * shape.head_dim * shape.text_layers,
        "lm_head": 2.0 * shape.text_hidden * shape.vocab * kept_logits,
    }


def flops_per_pair(
    shape: ModelShape, prompt_tokens: int, grid: VideoGrid, *, pairs_per_vision_pass: float, kept_logits: int
) -> dict[str, float]:
    """Analytic FLOPs one pair costs: its LM pass plus its share of a vision pass (shared by an average of
    `pairs_per_vision_pass` pairs), with a total."""
    parts = lm_flops(shape, prompt_tokens, kept_logits)
    parts.update({name: value / pairs_per_vision_pass for name, value in vision_flops(shape, grid).items()})
    parts["total"] = sum(parts.values())
    return parts


def reference_md_flops(shape: ModelShape, prompt_tokens: int, grid: VideoGrid) -> float:
    """REFERENCE.md's ~38 TFLOP figure: LM matmuls + causal LM attention + vision-block matmuls only."""
    lm = lm_flops(shape, prompt_tokens, kept_logits=0)
    block_matmul = 4 * shape.vision_hidden**2 + 2 * shape.vision_hidden * shape.vision_intermediate
    return lm["lm_matmul"] + lm["lm_attention"] + 2.0 * grid.patches * shape.vision_depth * block_matmul


# ----------------------------------------------------------------------------------------------------
# Memory model and automatic batch size
# ----------------------------------------------------------------------------------------------------


def weight_bytes(shape: ModelShape, dtype: torch.dtype) -> int:
    counts = parameter_counts(shape)
    tied = counts["lm_head"] if shape.name in TIED_EMBEDDINGS else 0  # the head is the embedding
    return (sum(counts.values()) - tied) * element_size(dtype)


def attention_scores_bytes(tokens: int, shape: ModelShape, dtype: torch.dtype) -> int:
    """The T x T attention scores term of `pair_activation_bytes` (heads T^2 (2e + 4)): what eager attention or
    SDPA's math fallback materialises and SDPA's flash and memory-efficient kernels never do."""
    return shape.text_heads * tokens * tokens * (2 * element_size(dtype) + 4)


# ----------------------------------------------------------------------------------------------------
# Device helpers: matmul ceiling, synchronised timing, peak memory
# ----------------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------------
# The analytic plan: what the hardware limit is before anything runs
# ----------------------------------------------------------------------------------------------------

# REFERENCE.md sections 3-4: 32 frames at 256x480, and the prompt for "a dog surfing" is 2168 tokens.
NOMINAL_FRAMES, NOMINAL_HEIGHT, NOMINAL_WIDTH, NOMINAL_PROMPT_TOKENS = 32, 256, 480, 2168
CARD_CONTEXT_BYTES = GIB  # CUDA context and library handles, before any tensor


def plan(
    shape: ModelShape,
    dtype: torch.dtype,
    queries_per_video: Sequence[int],
    assumed_tflops: float,
    cards_gb: Sequence[int] = (24, 40, 80, 141),
) -> dict[str, Any]:
    """FLOPs per pair, the time floor at an assumed matmul rate, and the memory model's batch sizes:
    everything that needs no device (the GPU run measures the rate and replaces the assumption)."""
    grid = grid_for(NOMINAL_FRAMES, NOMINAL_HEIGHT, NOMINAL_WIDTH, shape)
    tokens = NOMINAL_PROMPT_TOKENS
    paths = {"reference": flops_per_pair(shape, tokens, grid, pairs_per_vision_pass=1, kept_logits=tokens)}
    for count in queries_per_video:
        paths[f"rankvideo_q{count}"] = flops_per_pair(shape, tokens, grid, pairs_per_vision_pass=count, kept_logits=1)
    weights = weight_bytes(shape, dtype)
    return {
        "shape": shape.name,
        "dtype": str(dtype).removeprefix("torch."),
        "frames": NOMINAL_FRAMES,
        "frame_size": [NOMINAL_HEIGHT, NOMINAL_WIDTH],
        "video_grid_thw": [grid.temporal, grid.height, grid.width],
        "video_tokens": grid.merged_tokens(shape.merge),
        "prompt_tokens": tokens,
        "flops_per_pair": paths,
        "reference_md_counting": reference_md_flops(shape, tokens, grid),
        "assumed_tflops": assumed_tflops,
        "floor_ms_per_pair": {name: parts["total"] / (assumed_tflops * 1e12) * 1e3 for name, parts in paths.items()},
        "weights_bytes": weights,
        "pair_activation_bytes": {
            "last_position_logits": pair_activation_bytes(tokens, shape, dtype),
            "all_position_logits": pair_activation_bytes(tokens, shape, dtype, logit_positions=tokens),
        },
        "auto_batch_size": {
            f"{card}GB": auto_batch_size(card * 10**9 - weights - CARD_CONTEXT_BYTES, tokens, shape, dtype)
            for card in cards_gb
        },
    }


# The training prompt for "a dog surfing" at the nominal size (tests/test_scoring_training_prompt.py pins both counts):
# a 2096-token prefix (system turn, user header, video) and a 25-token suffix (`Query: ...` to `<answer>`).
TRAINING_PREFIX_TOKENS, TRAINING_SUFFIX_TOKENS = 2096, 25
PROMPT_PLAN_QUERIES_PER_VIDEO = (1.0, 2.3, 10.0, 23.0)  # MultiVENT at depth 100 averages ~2.3; depth 1000 ~23


def suffix_lm_flops(shape: ModelShape, prefix_tokens: int, suffix_tokens: int) -> dict[str, float]:
    """FLOPs of one query's suffix against a cached prefix: its matmuls, attention of each suffix token to the
    prefix and to the suffix's earlier tokens, and the LM head at its last token."""
    attended = suffix_tokens * prefix_tokens + suffix_tokens * (suffix_tokens + 1) / 2
    return {
        "lm_matmul": 2.0 * lm_matmul_parameters(shape) * suffix_tokens,
        "lm_attention": 4.0 * attended * shape.text_heads * shape.head_dim * shape.text_layers,
        "lm_head": 2.0 * shape.text_hidden * shape.vocab,
    }


def prompt_flops_per_pair(
    shape: ModelShape,
    grid: VideoGrid,
    queries_per_video: float,
    *,
    prompt: str,
    prefix_cache: bool,
    prompt_tokens: int = NOMINAL_PROMPT_TOKENS,
    prefix_tokens: int = TRAINING_PREFIX_TOKENS,
    suffix_tokens: int = TRAINING_SUFFIX_TOKENS,
) -> float:
    """One pair's FLOPs on rankvideo's path (one vision pass per video, logits at one position), for the
    inference prompt or the training prompt with or without the prefix cache; per-video work is shared by the
    video's `queries_per_video` queries (an average: 2.3 is a mix of 2 and 3)."""
    vision = sum(vision_flops(shape, grid).values()) / queries_per_video
    if prompt == "inference":
        return vision + sum(lm_flops(shape, prompt_tokens, kept_logits=1).values())
    if not prefix_cache:
        return vision + sum(lm_flops(shape, prefix_tokens + suffix_tokens, kept_logits=1).values())
    prefix = sum(lm_flops(shape, prefix_tokens, kept_logits=1).values()) / queries_per_video
    return vision + prefix + sum(suffix_lm_flops(shape, prefix_tokens, suffix_tokens).values())


def prompt_plan(
    shape: ModelShape,
    dtype: torch.dtype,
    assumed_tflops: float,
    queries_per_video: Sequence[float] = PROMPT_PLAN_QUERIES_PER_VIDEO,
    card_gb: int = 141,
) -> dict[str, Any]:
    """Predicted pairs/s (the FLOP floor at `assumed_tflops`) of the inference prompt and of the training
    prompt with and without the prefix cache, at each queries-per-video; and the prefix cache's memory."""
    grid = grid_for(NOMINAL_FRAMES, NOMINAL_HEIGHT, NOMINAL_WIDTH, shape)
    rows = []
    for count in queries_per_video:
        for prompt, reuse in (("inference", False), ("training", False), ("training", True)):
            flops = prompt_flops_per_pair(shape, grid, count, prompt=prompt, prefix_cache=reuse)
            rows.append(
                {
                    "queries_per_video": count,
                    "prompt": prompt,
                    "prefix_cache": reuse,
                    "tflop_per_pair": flops / 1e12,
                    "pairs_per_s": assumed_tflops * 1e12 / flops,
                }
            )
    free = card_gb * 10**9 - weight_bytes(shape, dtype) - CARD_CONTEXT_BYTES
    return {
        "assumed_tflops": assumed_tflops,
        "prefix_tokens": TRAINING_PREFIX_TOKENS,
        "suffix_tokens": TRAINING_SUFFIX_TOKENS,
        "rows": rows,
        "prefix_cache_bytes": prefix_cache_bytes(TRAINING_PREFIX_TOKENS, shape, dtype),
        "card_gb": card_gb,
        "auto_suffix_batch_size": auto_suffix_batch_size(free, TRAINING_PREFIX_TOKENS, shape, dtype),
    }


def format_prompt_plan(result: dict[str, Any]) -> str:
    lines = [
        f"prompts at {result['assumed_tflops']:g} TFLOP/s (ASSUMED rate; training prompt: "
        f"{result['prefix_tokens']}-token prefix + {result['suffix_tokens']}-token suffix):",
        "  q/video  prompt     prefix cache  TFLOP/pair  pairs/s  vs inference",
    ]
    inference_rate: dict[float, float] = {}
    for row in result["rows"]:
        if row["prompt"] == "inference":
            inference_rate[row["queries_per_video"]] = row["pairs_per_s"]
        ratio = row["pairs_per_s"] / inference_rate[row["queries_per_video"]]
        lines.append(
            f"  {row['queries_per_video']:>7g}  {row['prompt']:<9}  {'on' if row['prefix_cache'] else 'off':<12}  "
            f"{row['tflop_per_pair']:>10.2f}  {row['pairs_per_s']:>7.1f}  {ratio:>11.2f}x"
        )
    lines.append(
        f"prefix cache: {result['prefix_cache_bytes'] / 1e6:.0f} MB per video; suffixes per forward on a "
        f"{result['card_gb']} GB card: {result['auto_suffix_batch_size']}"
    )
    return "\n".join(lines)


def format_plan(result: dict[str, Any]) -> str:
    lines = [
        f"analytic plan: {result['shape']} shape, {result['dtype']}, {result['frames']} frames at "
        f"{result['frame_size'][0]}x{result['frame_size'][1]} (grid {result['video_grid_thw']}, "
        f"{result['video_tokens']} video tokens), {result['prompt_tokens']}-token prompt",
        "TFLOP per pair:",
    ]
    for name, parts in result["flops_per_pair"].items():
        detail = ", ".join(f"{key} {_tera(value)}" for key, value in parts.items() if key != "total")
        lines.append(f"  {name:<14} {_tera(parts['total']):>6}  ({detail})")
    lines.append(
        f"  REFERENCE.md's ~38 counts LM matmuls + LM attention + vision-block matmuls only: "
        f"{_tera(result['reference_md_counting'])}"
    )
    lines.append(f"floor per pair at {result['assumed_tflops']:g} TFLOP/s (ASSUMED rate, not measured):")
    for name, ms in result["floor_ms_per_pair"].items():
        lines.append(f"  {name:<14} {ms:6.1f} ms/pair = {1000 / ms:5.1f} pairs/s")
    activation = result["pair_activation_bytes"]
    lines.append(
        f"memory: weights {_gib(result['weights_bytes'])} GiB; bound per pair "
        f"{activation['last_position_logits'] / 1e9:.2f} GB (logits at the last position), "
        f"{activation['all_position_logits'] / 1e9:.2f} GB (at every position)"
    )
    lines.append(
        "auto batch size: " + ", ".join(f"{card} card -> {size}" for card, size in result["auto_batch_size"].items())
    )
    return "\n".join(lines)


def _tera(value: float) -> str:
    return f"{value / 1e12:.3g}"


def _gib(value: int | None) -> str:
    return "-" if value is None else f"{value / GIB:.1f}"


# ----------------------------------------------------------------------------------------------------
# Qwen3-VL-Reranker at MultiVENT's shapes (issue 35)
# ----------------------------------------------------------------------------------------------------

# The reference's measured long video (REFERENCE.md section 11; tests/reference's oracle): a 70 s 1280x720 file,
# sampled at 1 fps to 64 frames, query "a dog surfing on a wave". Every 720p video of 64 s or more takes this shape
# (64 frames, 720 tokens per frame pair unfitted); a longer video's timestamps have more digits, one id per digit per
# frame pair (a 10-minute video's fitted prompt is about 30 ids, 0.4%, longer).
RERANKER_SOURCE_HEIGHT, RERANKER_SOURCE_WIDTH, RERANKER_SOURCE_SECONDS = 720, 1280, 70
RERANKER_QUERY = "a dog surfing on a wave"
# Prompt ids for that video and query (tests/test_benchmarks.py recomputes both with rankvideo's recipe):
# unfitted, the frames are 640x1152 (720 tokens per frame pair, 23,040 video tokens) and the prompt is 23,395 ids;
# the reference's cut keeps every special id (the video pads are special) and drops the text but the last ids,
# so it stays 23,112 ids: the query is gone. rankvideo fits the video into the reference's own 7,680-token budget
# (`SamplingConfig.fit_total_pixels`): 352x640 frames, 7,040 video tokens, a 7,395-id prompt, nothing cut.
RERANKER_REFERENCE_PROMPT_TOKENS = 23112
RERANKER_FITTED_PROMPT_TOKENS = 7395
RERANKER_QUERIES_PER_VIDEO = (1.0, 2.3, 10.0)  # MultiVENT at depth 100 averages ~2.3 queries per video
RERANKER_CARDS_GB = (80, 141)


def reranker_video_shapes() -> dict[str, dict[str, Any]]:
    """The 70 s 720p video as the reference samples it (unfitted) and as rankvideo does (fitted), exactly as the
    reranker's `SamplingConfig` resizes it (`videos.sampling.output_size`), and RankVideo's nominal shape."""
    from dataclasses import replace

    from rankvideo_cli.scoring.rerankers import RERANKERS
    from rankvideo_cli.videos.sampling import output_size, sample_count, video_tokens

    sampling = RERANKERS["qwen3-vl-reranker"].sampling
    frames = sample_count(RERANKER_SOURCE_SECONDS, 1.0, sampling)  # a 1 fps file: one packet a second
    shapes = {}
    for name, config, tokens in (
        ("unfitted", replace(sampling, fit_total_pixels=None), RERANKER_REFERENCE_PROMPT_TOKENS),
        ("fitted", sampling, RERANKER_FITTED_PROMPT_TOKENS),
    ):
        height, width = output_size(RERANKER_SOURCE_HEIGHT, RERANKER_SOURCE_WIDTH, frames, config)
        grid = grid_for(frames, height, width, QWEN3_VL_8B)
        shapes[name] = {
            "frames": frames,
            "frame_size": [height, width],
            "video_grid_thw": [grid.temporal, grid.height, grid.width],
            "video_tokens": video_tokens(frames, (height, width), config),
            "prompt_tokens": tokens,
        }
    grid = grid_for(NOMINAL_FRAMES, NOMINAL_HEIGHT, NOMINAL_WIDTH, QWEN3_VL_8B)
    shapes["rankvideo"] = {
        "frames": NOMINAL_FRAMES,
        "frame_size": [NOMINAL_HEIGHT, NOMINAL_WIDTH],
        "video_grid_thw": [grid.temporal, grid.height, grid.width],
        "video_tokens": grid.merged_tokens(QWEN3_VL_8B.merge),
        "prompt_tokens": NOMINAL_PROMPT_TOKENS,
    }
    return shapes


def reranker_flops_per_pair(
    shape: ModelShape, prompt_tokens: int, grid: VideoGrid, *, queries_per_video: float, reference: bool
) -> dict[str, float]:
    """One Qwen3-VL-Reranker pair's FLOPs. The reference: the backbone (`model.model`, vision tower inside) for
    every pair and the one-row head W[yes] - W[no] at the last position. rankvideo: one vision pass shared by the
    video's queries, the same backbone and head, and the LM head at the last position (its log-probabilities)."""
    parts = lm_flops(shape, prompt_tokens, kept_logits=0)
    parts["lm_head"] = 2.0 * shape.text_hidden * (1 if reference else 1 + shape.vocab)
    shared = 1.0 if reference else queries_per_video
    parts.update({name: value / shared for name, value in vision_flops(shape, grid).items()})
    parts["total"] = sum(parts.values())
    return parts


def _memory(
    shape: ModelShape,
    dtype: torch.dtype,
    prompt_tokens: int,
    grid: VideoGrid,
    *,
    rows: Sequence[int],
    logit_positions: int,
    weights: int,
) -> dict[str, Any]:
    """The memory model's predicted peak at `rows` pairs per forward (one per card), as gpu_throughput.py predicts
    each run's: weights + one vision pass + rows x the bound per pair; and the same without the T x T scores."""
    pair = pair_activation_bytes(prompt_tokens, shape, dtype, logit_positions=logit_positions)
    scores = attention_scores_bytes(prompt_tokens, shape, dtype)
    vision = vision_activation_bytes(grid.patches, shape, dtype)
    return {
        "pair_bound_bytes": pair,
        "pair_bound_without_scores_bytes": pair - scores,
        "vision_bytes": vision,
        "predicted_peak_bytes": [weights + vision + count * pair for count in rows],
        "predicted_peak_without_scores_bytes": [weights + vision + count * (pair - scores) for count in rows],
    }


def reranker_plan(
    dtype: torch.dtype,
    assumed_tflops: float,
    queries_per_video: Sequence[float] = RERANKER_QUERIES_PER_VIDEO,
    cards_gb: Sequence[int] = RERANKER_CARDS_GB,
) -> dict[str, Any]:
    """Predicted pairs/s (the FLOP floor at `assumed_tflops`) and memory of Qwen3-VL-Reranker 2B and 8B at
    MultiVENT's shapes, the reference's way (one pair per forward, unfitted and fitted) and rankvideo's (fitted,
    batched, one vision pass per video), beside RankVideo 8B at its nominal shape.

    Batch: what the scorer picks on each card (`memory.default_batch_size`'s rule: `auto_batch_size` at the
    reranker's longest prompt, `max_prompt_tokens`); the reference runs one pair.
    Memory: the predicted peak at that batch (as rows of gpu_throughput.py's runs), and without the T x T
    attention scores that only eager attention or SDPA's math fallback materialise."""
    from rankvideo_cli.scoring.rerankers import RERANKERS

    videos = reranker_video_shapes()
    grids = {name: VideoGrid(*video["video_grid_thw"]) for name, video in videos.items()}
    longest = {name: max_prompt_tokens(RERANKERS[name].sampling) for name in ("qwen3-vl-reranker", "rankvideo")}
    models = {}
    rows: list[dict[str, Any]] = []
    for model, shape, reranker in (
        ("RankVideo 8B", QWEN3_VL_8B, "rankvideo"),
        ("Qwen3-VL-Reranker-2B", QWEN3_VL_2B, "qwen3-vl-reranker"),
        ("Qwen3-VL-Reranker-8B", QWEN3_VL_8B, "qwen3-vl-reranker"),
    ):
        weights = weight_bytes(shape, dtype)
        batches = [
            auto_batch_size(card * 10**9 - weights - CARD_CONTEXT_BYTES, longest[reranker], shape, dtype)
            for card in cards_gb
        ]
        models[model] = {
            "shape": shape.name,
            "reranker": reranker,
            "weights_bytes": weights,
            "tied_embeddings": shape.name in TIED_EMBEDDINGS,
            "scorer_longest_prompt_tokens": longest[reranker],
            "auto_batch_size": dict(zip((f"{card}GB" for card in cards_gb), batches, strict=True)),
        }
        if reranker == "rankvideo":
            cases = [("rankvideo", "reference", 1.0)] + [("rankvideo", "rankvideo", q) for q in queries_per_video]
        else:
            cases = [("unfitted", "reference", 1.0), ("fitted", "reference", 1.0)]
            cases += [("fitted", "rankvideo", q) for q in queries_per_video]
        for video, path, count in cases:
            tokens = videos[video]["prompt_tokens"]
            reference = path == "reference"
            if reranker == "rankvideo":  # RankVideo's reference: the full LM head at every position
                kept = tokens if reference else 1
                flops = flops_per_pair(
                    shape, tokens, grids[video], pairs_per_vision_pass=1 if reference else count, kept_logits=kept
                )
            else:
                kept = 0 if reference else 1
                flops = reranker_flops_per_pair(
                    shape, tokens, grids[video], queries_per_video=count, reference=reference
                )
            pairs_per_forward = [1 if reference else min(batch, math.ceil(count)) for batch in batches]
            # `pad sq`, a counterfactual: a video's prompts differ in length, and a batch of them left-padded with
            # an explicit mask makes SDPA's kernels compute the whole T x T square, twice the causal half counted
            # here; the scorer pads each row at its end and passes no mask, so it keeps the half
            padded = pairs_per_forward[0] > 1
            square = flops["total"] + (flops["lm_attention"] if padded else 0.0)
            rows.append(
                {
                    "model": model,
                    "video": video,
                    "path": path,
                    "queries_per_video": count,
                    "prompt_tokens": tokens,
                    "flops_per_pair": flops,
                    "tflop_per_pair": flops["total"] / 1e12,
                    "pairs_per_s": assumed_tflops * 1e12 / flops["total"],
                    "pairs_per_s_padded_square": assumed_tflops * 1e12 / square,
                    "pairs_per_forward": dict(zip((f"{card}GB" for card in cards_gb), pairs_per_forward, strict=True)),
                    **_memory(
                        shape,
                        dtype,
                        tokens,
                        grids[video],
                        rows=pairs_per_forward,
                        logit_positions=kept,
                        weights=weights,
                    ),
                }
            )
    return {
        "assumed_tflops": assumed_tflops,
        "dtype": str(dtype).removeprefix("torch."),
        "source": {
            "height": RERANKER_SOURCE_HEIGHT,
            "width": RERANKER_SOURCE_WIDTH,
            "seconds": RERANKER_SOURCE_SECONDS,
            "query": RERANKER_QUERY,
        },
        "videos": videos,
        "cards_gb": list(cards_gb),
        "models": models,
        "rows": rows,
    }


def format_reranker_plan(result: dict[str, Any]) -> str:
    """The reranker plan, in at most 80 columns."""
    videos, source = result["videos"], result["source"]
    cards = result["cards_gb"]

    def shape_of(video: dict[str, Any]) -> str:
        height, width = video["frame_size"]
        return f"{video['frames']} x {height}x{width}, {video['video_tokens']} video tokens"

    lines = [
        f"Qwen3-VL-Reranker at MultiVENT's shapes ({result['dtype']}): a {source['seconds']} s "
        f"{source['width']}x{source['height']} video",
        f"at 1 fps, query {source['query']!r}",
        f"  unfit: {shape_of(videos['unfitted'])} (the reference's frames),",
        f"         {videos['unfitted']['prompt_tokens']} ids after the reference's cut (it keeps every special id",
        "         and drops the query)",
        f"  fit:   {shape_of(videos['fitted'])} (rankvideo's: fit_total_pixels),",
        f"         {videos['fitted']['prompt_tokens']} ids",
        f"  nom:   RankVideo's {shape_of(videos['rankvideo'])}, {videos['rankvideo']['prompt_tokens']} ids",
        f"pairs/s: the floor at {result['assumed_tflops']:g} TFLOP/s (ASSUMED rate, not measured); x ref: over",
        "the model's first row; pad sq: pairs/s where a padded batch's attention",
        "costs the whole T x T square (a masked kernel: SDPA's memory-efficient one,",
        "the CPU's; flash_attention_2 keeps the causal half). reference: one pair per",
        "forward, the vision tower in each; rankvideo: a video's queries batched, one",
        "vision pass per video.",
        f"batch: pairs per forward on {' / '.join(f'{card} GB' for card in cards)} cards (the scorer's rule, at",
        f"its longest prompt); peak GiB on {cards[0]} GB at that batch: the memory model's",
        "bound (eager T x T attention scores counted) / the same without the scores",
        "(what SDPA's fused kernels need)",
    ]
    header = (
        f"  {'video':<6}{'path':<10}{'q/vid':>5}{'TFLOP/pr':>10}{'pairs/s':>9}{'x ref':>7}{'pad sq':>8}{'batch':>7}"
        f"{'peak GiB':>15}"
    )
    for model, info in result["models"].items():
        tied = " (tied embeddings)" if info["tied_embeddings"] else ""
        lines += [
            f"{model}: weights {_gib(info['weights_bytes'])} GiB{tied}; longest prompt "
            f"{info['scorer_longest_prompt_tokens']}",
            header,
        ]
        model_rows = [row for row in result["rows"] if row["model"] == model]
        for row in model_rows:
            video = {"unfitted": "unfit", "fitted": "fit", "rankvideo": "nom"}[row["video"]]
            batch = "/".join(str(count) for count in row["pairs_per_forward"].values())
            peak = f"{_gib(row['predicted_peak_bytes'][0])} / {_gib(row['predicted_peak_without_scores_bytes'][0])}"
            lines.append(
                f"  {video:<6}{row['path']:<10}{row['queries_per_video']:>5g}{row['tflop_per_pair']:>10.3g}"
                f"{row['pairs_per_s']:>9.1f}{row['pairs_per_s'] / model_rows[0]['pairs_per_s']:>6.2f}x"
                f"{row['pairs_per_s_padded_square']:>8.1f}{batch:>7}{peak:>15}"
            )
    return "\n".join(lines)
