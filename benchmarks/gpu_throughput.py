"""GPU throughput of RankVideo scoring, measured against the hardware limit (issue 6).

A random-weight model with the exact Qwen3-VL-8B-Instruct shape (REFERENCE.md section 7) is built directly
on the device, in bf16, and scores real decoded frames (synthesized clips decoded by `rankvideo_cli.frames`)
two ways:

- reference: what the authors' code does per pair: one pair per forward, the vision tower runs for every pair,
  logits are computed at every prompt position;
- rankvideo: `Qwen3VLScorer.score_video` with its defaults, at 1, 5 and 20 queries per video.

For each it reports pairs/s, the time split (decode, preprocessing, vision tower, language model), peak
device memory, the analytic FLOPs per pair and the model FLOP utilisation against the bf16 matmul rate
measured in the same process. It also reports the largest score difference between the two paths over the
same pairs.

`--cpu-smoke` runs the same code on the CPU with a tiny shape in float32 (the test suite runs it); on a GPU
run `python benchmarks/gpu_throughput.py --json results.json` (see benchmarks/README.md, "GPU throughput").
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

GIB = 1024**3


# ----------------------------------------------------------------------------------------------------
# Model shapes, parameter counts and analytic FLOPs
# ----------------------------------------------------------------------------------------------------


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
            },
            tie_word_embeddings=False,
        )


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
)

SHAPES = {shape.name: shape for shape in (QWEN3_VL_8B, TINY)}


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
    shape: ModelShape, prompt_tokens: int, grid: VideoGrid, *, pairs_per_vision_pass: int, kept_logits: int
) -> dict[str, float]:
    """Analytic FLOPs one pair costs: its LM pass plus its share of a vision pass, with a total."""
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
    return sum(parameter_counts(shape).values()) * _element_size(dtype)


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
    e = _element_size(dtype)
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
    e = _element_size(dtype)
    vision = shape.vision_hidden
    block = patches * (6 * vision + 3 * shape.vision_intermediate) * e + 4 * patches * vision * 4
    merged_tokens = patches // shape.merge**2
    features = (1 + len(shape.deepstack_layers)) * merged_tokens * shape.text_hidden * e
    return block + features + 2 * patches * vision * shape.merge**2 * e


# Fixed headroom besides the pairs: CUDA context, cuBLAS/cuDNN workspaces, allocator fragmentation.
BATCH_RESERVE_BYTES = 3 * GIB
BATCH_FREE_FRACTION = 0.85
MAX_AUTO_BATCH = 32


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
    `pair_activation_bytes` deliberately over-estimates (every transient summed, eager attention scores and
    a KV cache counted), so the result holds for any attention implementation; pass
    `logit_positions=tokens` when logits are kept at every position. The 15% margin and the 3 GiB reserve
    cover the CUDA context, library workspaces and allocator fragmentation. Batching beyond a few pairs buys
    little anyway: one 2k-token pair already gives the matmuls thousands of rows.
    """
    if tokens_per_pair <= 0:
        raise ValueError(f"tokens_per_pair must be positive, got {tokens_per_pair}")
    patches = tokens_per_pair * shape.merge**2  # at most every token is a merged vision token
    usable = BATCH_FREE_FRACTION * free_bytes - BATCH_RESERVE_BYTES
    usable -= vision_activation_bytes(patches, shape, dtype)
    per_pair = pair_activation_bytes(tokens_per_pair, shape, dtype, logit_positions=logit_positions)
    return int(max(1, min(max_batch, usable // per_pair)))


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


# ----------------------------------------------------------------------------------------------------
# Device helpers: matmul ceiling, synchronised timing, peak memory
# ----------------------------------------------------------------------------------------------------


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_matmul_tflops(device: torch.device, dtype: torch.dtype, size: int, repeats: int = 10) -> float:
    """Dense matmul rate (TFLOP/s, median of `repeats` after warm-up) on random data: the MFU denominator."""
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    for _ in range(3):
        torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        torch.matmul(a, b)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 2.0 * size**3 / statistics.median(times) / 1e12


class StageTimer:
    """Accumulates wall time spent inside the vision tower and the language model (LM head included).

    Forward hooks synchronise the device at each boundary, so the split is exact at the cost of a few syncs
    per batch; whatever `score_video` spends outside those modules (processor, tokenizer, copies, log-softmax)
    is the caller's total minus these.
    """

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.device = device
        self.seconds = {"vision": 0.0, "language_model": 0.0}
        self.calls = {"vision": 0, "language_model": 0}
        self._started: dict[str, float] = {}
        self._handles = []
        inner = model.model
        for stage, module in (("vision", inner.visual), ("language_model", inner.language_model)):
            self._handles.append(module.register_forward_pre_hook(self._starter(stage)))
            self._handles.append(module.register_forward_hook(self._stopper(stage)))
        # the LM head runs right after the language model: charge it there
        self._handles.append(model.lm_head.register_forward_pre_hook(self._starter("language_model")))
        self._handles.append(model.lm_head.register_forward_hook(self._stopper("language_model")))

    def _starter(self, stage: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            synchronize(self.device)
            self._started[stage] = time.perf_counter()

        return hook

    def _stopper(self, stage: str) -> Callable[..., None]:
        def hook(*_: Any) -> None:
            synchronize(self.device)
            self.seconds[stage] += time.perf_counter() - self._started.pop(stage)
            self.calls[stage] += 1

        return hook

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.calls = dict.fromkeys(self.calls, 0)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


# ----------------------------------------------------------------------------------------------------
# Inputs: synthesized clips and queries
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClipSpec:
    """A synthesized H.264 clip: long enough at this fps for the sampler to take `max_frames` frames."""

    width: int
    height: int
    fps: int
    seconds: float


def synthesize_clip(path: Path, spec: ClipSpec, seed: int) -> Path:
    """Write a deterministic clip: coloured boxes moving over a drifting noise texture.

    Real H.264 with real detail, so decoding costs what real videos cost; contents differ per seed, so
    scores differ per video.
    """
    import av

    rng = np.random.default_rng(seed)
    texture = rng.integers(0, 256, size=(spec.height, spec.width * 2, 3), dtype=np.uint8)
    boxes = [
        (
            rng.integers(0, 256, size=3, dtype=np.uint8),
            rng.uniform(0.1, 0.4),
            rng.uniform(-1, 1),
            rng.uniform(-1, 1),
        )
        for _ in range(3)
    ]
    frame_count = round(spec.fps * spec.seconds)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=spec.fps)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30", "g": str(spec.fps * 2)}
        stream.time_base = Fraction(1, spec.fps)
        for index in range(frame_count):
            shift = (index * 7) % spec.width
            image = np.ascontiguousarray(texture[:, shift : shift + spec.width])
            image //= 2
            progress = index / max(1, frame_count - 1)
            for colour, scale, vx, vy in boxes:
                box_h, box_w = int(spec.height * scale), int(spec.width * scale)
                top = int((spec.height - box_h) * (0.5 + 0.5 * vy * (2 * progress - 1) * 0.9))
                left = int((spec.width - box_w) * (0.5 + 0.5 * vx * (2 * progress - 1) * 0.9))
                image[top : top + box_h, left : left + box_w] = colour
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


_SUBJECTS = ["a red ball", "two people", "a blue car", "a dog", "a crowd", "a small boat", "a yellow square"]
_ACTIONS = ["moving left", "crossing a street", "at night", "in the rain", "on a beach", "during a protest"]
_CONTEXTS = ["", " near a river", " filmed from a drone", " with a news anchor speaking", " in a busy market"]


def make_queries(count: int) -> list[str]:
    """`count` distinct, deterministic queries of varied length (so batches need left padding)."""
    queries = []
    for index in range(count):
        subject = _SUBJECTS[index % len(_SUBJECTS)]
        action = _ACTIONS[(index // len(_SUBJECTS)) % len(_ACTIONS)]
        context = _CONTEXTS[index % len(_CONTEXTS)]
        queries.append(f"{subject} {action}{context}")
    if len(set(queries)) != count:
        raise ValueError(f"only {len(set(queries))} distinct queries available, asked for {count}")
    return queries


@contextmanager
def stopwatch(device: torch.device) -> Iterator[list[float]]:
    """Synchronised wall time of the block, appended to the yielded list."""
    elapsed: list[float] = []
    synchronize(device)
    start = time.perf_counter()
    yield elapsed
    synchronize(device)
    elapsed.append(time.perf_counter() - start)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
