"""GPU throughput of RankVideo scoring, measured against the hardware limit (issue 6).

A random-weight model with the exact Qwen3-VL-8B-Instruct shape (REFERENCE.md section 7) is built directly
on the device, in bf16, and scores real decoded frames (synthesized clips decoded by `rankvideo_cli.videos.frames`)
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

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rankvideo_cli.scoring.memory import (  # the memory model and batch rule the scorer itself uses
    ModelShape,
    auto_batch_size,
    pair_activation_bytes,
    vision_activation_bytes,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_plan beside this file, however it is loaded
from gpu_plan import (
    SHAPES,
    VideoGrid,
    _gib,
    _tera,
    flops_per_pair,
    format_plan,
    format_prompt_plan,
    format_reranker_plan,
    lm_flops,
    parameter_counts,
    plan,
    prompt_plan,
    reference_md_flops,
    reranker_plan,
    vision_flops,
)


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


def reset_peak_memory(device: torch.device) -> None:
    """Start a run's peak-memory window; cached blocks are released first so the reserved peak is its own."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: torch.device) -> int | None:
    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None


def peak_reserved_bytes(device: torch.device) -> int | None:
    """What the caching allocator held at most: the figure that decides out-of-memory."""
    return int(torch.cuda.max_memory_reserved(device)) if device.type == "cuda" else None


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


# ----------------------------------------------------------------------------------------------------
# Executed-FLOP accounting from the shapes the model actually sees
# ----------------------------------------------------------------------------------------------------


class StageMeter:
    """Wall time and executed FLOPs of the vision tower and the language model (LM head included).

    Forward hooks synchronise the device at each boundary, so the time split is exact at the cost of a few
    syncs per batch; whatever a scorer spends outside these modules (processor, tokenizer, copies,
    log-softmax) is the caller's total minus these. FLOPs come from the analytic formulas applied to the
    shapes each call receives: grids for the vision tower, non-padding tokens per row for the language model,
    kept positions for the LM head; padded positions are counted apart (they cost time, not useful work).
    """

    STAGES = ("vision", "language_model")

    def __init__(
        self, model: torch.nn.Module, shape: ModelShape, device: torch.device, pad_token_id: int | None = None
    ) -> None:
        """`pad_token_id`: the scorer's padding, which it puts after each row's last token with no attention
        mask (`PromptBatch.right_padded`): a row's length is then where its trailing padding starts."""
        self.shape = shape
        self.device = device
        self.pad_token_id = pad_token_id
        self._started: dict[str, float] = {}
        self._handles: list[Any] = []
        self._row_lengths: list[int] | None = None
        self.reset()
        inner = model.model
        self._handles.append(inner.register_forward_pre_hook(self._note_row_lengths, with_kwargs=True))
        self._hook(inner.visual, "vision", self._count_vision)
        self._hook(inner.language_model, "language_model", self._count_language_model)
        # the LM head runs right after the language model: charged to it
        self._hook(model.lm_head, "language_model", self._count_lm_head)

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.STAGES, 0.0)
        self.flops: dict[str, float] = {}
        self.tokens = 0  # non-padding prompt tokens through the language model
        self.padded_tokens = 0  # positions computed, padding included
        self.prompt_lengths: list[int] = []
        self.vision_calls = 0
        self.lm_calls = 0

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _hook(self, module: torch.nn.Module, stage: str, count: Callable[[tuple, dict], None]) -> None:
        def before(_module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
            count(args, kwargs)
            synchronize(self.device)
            self._started[stage] = time.perf_counter()

        def after(*_: Any) -> None:
            synchronize(self.device)
            self.seconds[stage] += time.perf_counter() - self._started.pop(stage)

        self._handles.append(module.register_forward_pre_hook(before, with_kwargs=True))
        self._handles.append(module.register_forward_hook(after))

    def _add(self, parts: dict[str, float]) -> None:
        for name, value in parts.items():
            self.flops[name] = self.flops.get(name, 0.0) + value

    def _count_vision(self, args: tuple, kwargs: dict) -> None:
        grid_thw = kwargs.get("grid_thw", args[1] if len(args) > 1 else None)
        self.vision_calls += 1
        for temporal, height, width in grid_thw.tolist():
            self._add(vision_flops(self.shape, VideoGrid(temporal, height, width)))

    def _note_row_lengths(self, _module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        """Rows padded at their end without a mask: each row's length, from the backbone's `input_ids`."""
        input_ids = kwargs.get("input_ids", args[0] if args else None)
        self._row_lengths = None
        if self.pad_token_id is None or kwargs.get("attention_mask") is not None or input_ids is None:
            return
        width = int(input_ids.shape[1])
        real = (input_ids != self.pad_token_id).int()
        # the last position that is not padding, +1 (a row is never all padding)
        last = width - real.flip(dims=[1]).argmax(dim=1)
        self._row_lengths = [int(n) for n in last.tolist()]

    def _count_language_model(self, args: tuple, kwargs: dict) -> None:
        embeds = kwargs.get("inputs_embeds")
        batch, positions = int(embeds.shape[0]), int(embeds.shape[1])
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.dim() == 2:
            lengths = [int(n) for n in mask.sum(dim=1).tolist()]
        elif self._row_lengths is not None and len(self._row_lengths) == batch:
            lengths = self._row_lengths
        else:
            lengths = [positions] * batch
        self.lm_calls += 1
        self.padded_tokens += batch * positions
        for length in lengths:
            self.tokens += length
            self.prompt_lengths.append(length)
            parts = lm_flops(self.shape, length, kept_logits=0)
            self._add({"lm_matmul": parts["lm_matmul"], "lm_attention": parts["lm_attention"]})

    def _count_lm_head(self, args: tuple, kwargs: dict) -> None:
        hidden = args[0] if args else kwargs["input"]
        kept = hidden.numel() // hidden.shape[-1]  # rows x kept positions
        self._add({"lm_head": 2.0 * self.shape.text_hidden * self.shape.vocab * kept})

    def snapshot(self) -> dict[str, Any]:
        total_flops = sum(self.flops.values())
        return {
            "seconds": dict(self.seconds),
            "flops": {**self.flops, "total": total_flops},
            "prompt_tokens": self.tokens,
            "padded_positions": self.padded_tokens,
            "prompt_tokens_mean": statistics.fmean(self.prompt_lengths) if self.prompt_lengths else 0.0,
            "vision_calls": self.vision_calls,
            "lm_calls": self.lm_calls,
        }


# ----------------------------------------------------------------------------------------------------
# Model, processor, inputs
# ----------------------------------------------------------------------------------------------------


def build_random_model(
    shape: ModelShape, device: torch.device, dtype: torch.dtype, attn_implementation: str, seed: int
) -> torch.nn.Module:
    """A random-weight Qwen3-VL of `shape`, allocated and initialised directly on `device` in `dtype`.

    Under `torch.device(device)` every parameter is created on the device and initialised there by
    transformers' own `_init_weights` (normal with `init_std`), so 8B parameters never touch host memory.
    """
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(seed)
    with torch.device(device):
        model = Qwen3VLForConditionalGeneration._from_config(
            shape.config(), dtype=dtype, attn_implementation=attn_implementation
        )
    return model.eval().requires_grad_(False)


def load_processor() -> Any:
    """Qwen3-VL-8B-Instruct's processor (real tokenizer, chat template, video settings), built offline by
    rankvideo's tiny-random model directory."""
    from transformers import AutoProcessor

    from rankvideo_cli.scoring.tiny import ensure_tiny_model

    return AutoProcessor.from_pretrained(str(ensure_tiny_model()))


@dataclass(frozen=True)
class ClipSet:
    """The decoded inputs: one SampledVideo per clip and the seconds each decode took."""

    paths: list[Path]
    videos: list[Any]  # rankvideo_cli.videos.frames.SampledVideo
    decode_seconds: list[float]


def prepare_clips(directory: Path, spec: ClipSpec, count: int, sampling: Any) -> ClipSet:
    """Synthesize `count` clips (cached by spec and seed) and decode each with rankvideo's sampler."""
    from rankvideo_cli.videos.frames import sample_video

    paths = []
    for index in range(count):
        path = directory / f"clip{index:03d}_{spec.width}x{spec.height}_{spec.fps}fps_{spec.seconds}s.mp4"
        if not path.exists():
            synthesize_clip(path.with_suffix(".tmp.mp4"), spec, seed=index).rename(path)
        paths.append(path)
    videos, seconds = [], []
    for path in paths:
        started = time.perf_counter()
        videos.append(sample_video(path, sampling))
        seconds.append(time.perf_counter() - started)
    return ClipSet(paths=paths, videos=videos, decode_seconds=seconds)


# ----------------------------------------------------------------------------------------------------
# The two scoring paths
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    video: int  # index into ClipSet.videos
    query: str


class ReferencePath:
    """Scores pairs the way the reference does: the full processor call, one pair per forward, the vision
    tower inside every forward, logits at every prompt position (the score reads the last one)."""

    def __init__(self, model: torch.nn.Module, processor: Any) -> None:
        from rankvideo_cli.scoring.answers import answer_token_ids

        self.model = model
        self.processor = processor
        self.device = next(model.parameters()).device
        self.yes_ids, self.no_ids = answer_token_ids(processor.tokenizer)

    def inputs(self, pair: Pair, clips: ClipSet) -> dict[str, torch.Tensor]:
        from rankvideo_cli.scoring.prompt import prepare_inputs

        return prepare_inputs(self.processor, [pair.query], clips.videos[pair.video])

    def score(self, pair: Pair, clips: ClipSet) -> Any:
        from rankvideo_cli.scoring.answers import full_scores

        inputs = {name: value.to(self.device) for name, value in self.inputs(pair, clips).items()}
        with torch.inference_mode():
            output = self.model(**inputs, use_cache=False, logits_to_keep=0)
            logprobs = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)
        return full_scores(logprobs, self.yes_ids, self.no_ids)[0]


def run_reference(
    reference: ReferencePath, pairs: list[Pair], clips: ClipSet, meter: StageMeter
) -> tuple[dict[str, Any], list[Any]]:
    """Time the reference path over `pairs`; decode is charged once per pair, as the reference decodes
    each video again for every query (the measured decode time of that video)."""
    device = meter.device
    reference.score(pairs[0], clips)  # warm-up: kernels, allocator
    meter.reset()
    reset_peak_memory(device)
    scores = []
    with stopwatch(device) as elapsed:
        for pair in pairs:
            scores.append(reference.score(pair, clips))
    decode = sum(clips.decode_seconds[pair.video] for pair in pairs)
    record = _run_record("reference", 1, len(pairs), elapsed[0], decode, meter, device)
    record["decode_basis"] = "once per pair (measured decode time of its video), as the reference re-decodes"
    record["batch_size"] = 1
    return record, scores


def run_rankvideo(
    scorer: Any, queries: list[str], clips: ClipSet, meter: StageMeter, name: str = "rankvideo"
) -> tuple[dict[str, Any], list[Any]]:
    """Time `scorer.score_video(queries, video)` over every video (decode once per video)."""
    device = meter.device
    warmup_started = time.perf_counter()
    scorer.score_video(queries, clips.videos[0])  # warm-up (and compilation, when compiled)
    synchronize(device)
    warmup = time.perf_counter() - warmup_started
    meter.reset()
    reset_peak_memory(device)
    halvings_before = scorer.oom_halvings
    scores = []
    with stopwatch(device) as elapsed:
        for video in clips.videos:
            scores.extend(scorer.score_video(queries, video))
    pairs = len(queries) * len(clips.videos)
    record = _run_record(name, len(queries), pairs, elapsed[0], sum(clips.decode_seconds), meter, device)
    record["decode_basis"] = "once per video"
    record["batch_size"] = scorer.batch_size  # after any out-of-memory halving
    record["oom_halvings"] = scorer.oom_halvings - halvings_before
    record["warmup_seconds"] = warmup
    return record, scores


@dataclass(frozen=True)
class _Candidate:
    docid: str


class _ClipResolver:
    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def resolve(self, docid: str) -> Path | None:
        return self.paths.get(docid)


def run_pipeline(
    scorer: Any, queries: list[str], clips: ClipSet, meter: StageMeter, store_dir: Path
) -> tuple[dict[str, Any], list[Any]]:
    """Time rankvideo end to end: `pipeline.score_pairs` over a run in which every query has every clip as a
    candidate, with its default decode threads (decoding from the files, overlapped with scoring) and a
    fresh score store. Scores come back in the video-major order of `run_rankvideo`."""
    from rankvideo_cli.pipeline.plan import Pairs
    from rankvideo_cli.pipeline.score import score_pairs
    from rankvideo_cli.pipeline.store import ScoreStore

    device = meter.device
    docids = [f"clip{index:03d}" for index in range(len(clips.paths))]
    qids = [f"q{index:03d}" for index in range(len(queries))]
    run = {qid: [_Candidate(docid) for docid in docids] for qid in qids}
    resolver = _ClipResolver(dict(zip(docids, clips.paths, strict=True)))
    meter.reset()
    reset_peak_memory(device)
    with ScoreStore(store_dir) as store, stopwatch(device) as elapsed:
        result = score_pairs(Pairs(run, dict(zip(qids, queries, strict=True)), resolver, len(docids)), scorer, store)
    wall = elapsed[0]
    pairs = len(queries) * len(docids)
    if result.counts.pairs_scored != pairs:
        raise RuntimeError(f"the pipeline scored {result.counts.pairs_scored} of {pairs} pairs")
    scores = [result.scores[(qid, docid)] for docid in docids for qid in qids]
    record = _run_record("rankvideo pipeline", len(queries), pairs, wall, 0.0, meter, device)
    # decode ran in threads beside the scorer: the wall time already holds whatever it did not hide
    record["seconds"]["decode"] = result.timings.decode_s
    record["seconds"]["waiting_for_decode"] = result.timings.wait_s
    record["seconds"]["store"] = result.timings.store_s
    record["pairs_per_s_with_decode"] = record["pairs_per_s"]
    record["decode_basis"] = "decode threads overlapped with scoring (decode = summed thread time)"
    record["decode_workers"] = result.settings.get("decode_workers")
    record["batch_size"] = scorer.batch_size
    return record, scores


def _run_record(
    name: str,
    queries_per_video: int,
    pairs: int,
    scoring_seconds: float,
    decode_seconds: float,
    meter: StageMeter,
    device: torch.device,
) -> dict[str, Any]:
    measured = meter.snapshot()
    vision, language = measured["seconds"]["vision"], measured["seconds"]["language_model"]
    seconds = {
        "decode": decode_seconds,
        # processor, tokenizer, host-to-device copies, log-softmax: everything outside the two modules
        "preprocess_and_other": max(0.0, scoring_seconds - vision - language),
        "vision": vision,
        "language_model": language,
    }
    seconds["scoring"] = scoring_seconds
    seconds["total_serial"] = scoring_seconds + decode_seconds
    return {
        "name": name,
        "queries_per_video": queries_per_video,
        "pairs": pairs,
        "seconds": seconds,
        "pairs_per_s": pairs / scoring_seconds,
        "pairs_per_s_with_decode": pairs / seconds["total_serial"],
        "peak_memory_bytes": peak_memory_bytes(device),
        "peak_reserved_bytes": peak_reserved_bytes(device),
        "flops": measured["flops"],
        "flops_per_pair": measured["flops"]["total"] / pairs,
        "prompt_tokens_mean": measured["prompt_tokens_mean"],
        "padding_overhead": measured["padded_positions"] / max(1, measured["prompt_tokens"]) - 1.0,
        "vision_calls": measured["vision_calls"],
        "lm_calls": measured["lm_calls"],
    }


def add_utilisation(record: dict[str, Any], matmul_tflops: float) -> None:
    """MFU: executed (useful) FLOPs over time, as a fraction of the measured matmul rate."""
    flops = record["flops"]["total"]
    seconds = record["seconds"]
    peak = matmul_tflops * 1e12
    record["achieved_tflops"] = flops / seconds["scoring"] / 1e12
    record["mfu"] = flops / seconds["scoring"] / peak
    model_seconds = seconds["vision"] + seconds["language_model"]
    record["mfu_in_model"] = flops / model_seconds / peak if model_seconds > 0 else None


def score_deltas(fast: list[Any], reference: list[Any]) -> dict[str, float | int]:
    """Largest absolute differences between two score lists over the same pairs."""
    if len(fast) != len(reference):
        raise ValueError(f"{len(fast)} fast scores vs {len(reference)} reference scores")

    def worst(field: str) -> float:
        return max(abs(getattr(a, field) - getattr(b, field)) for a, b in zip(fast, reference, strict=True))

    return {
        "pairs": len(fast),
        "max_abs_logit_delta": worst("logit_delta"),
        "max_abs_logprob_yes": worst("logprob_yes"),
        "max_abs_logprob_no": worst("logprob_no"),
        "max_abs_p_yes": worst("p_yes"),
        "reference_logit_delta_spread": statistics.pstdev(score.logit_delta for score in reference)
        if len(reference) > 1
        else 0.0,
    }


# ----------------------------------------------------------------------------------------------------
# What the ecosystem offers: attention kernels, torch.compile, logits_to_keep, batch size
# ----------------------------------------------------------------------------------------------------


@contextmanager
def logits_at_every_position(model: torch.nn.Module) -> Iterator[None]:
    """Make every scoring forward compute logits at all positions, as without `logits_to_keep`: the scorer runs
    the backbone (`model.model`) and then its reranker's head on the last position only, so the LM head is run
    here over every position the backbone returns."""
    backbone = model.model
    original = backbone.forward

    def forward(*args: Any, **kwargs: Any) -> Any:
        output = original(*args, **kwargs)
        model.lm_head(output[0])
        return output

    backbone.forward = forward
    try:
        yield
    finally:
        del backbone.forward


@contextmanager
def compiled(model: torch.nn.Module) -> Iterator[None]:
    """torch.compile the vision tower's and the language model's forwards (dynamic shapes: prompt lengths
    vary per batch). The modules' hooks stay outside the compiled code, so the timing split still holds."""
    modules = (model.model.visual, model.model.language_model)
    for module in modules:
        module.forward = torch.compile(module.forward, dynamic=True)
    try:
        yield
    finally:
        for module in modules:
            del module.forward
        torch._dynamo.reset()


@contextmanager
def attention(model: torch.nn.Module, implementation: str) -> Iterator[None]:
    """Switch the attention implementation of the whole model (vision tower included) for the block."""
    previous = model.config._attn_implementation
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)


SDPA_BACKENDS = {
    "flash": "FLASH_ATTENTION",
    "efficient": "EFFICIENT_ATTENTION",
    "cudnn": "CUDNN_ATTENTION",
    "math": "MATH",
}


@contextmanager
def sdpa_backend(name: str) -> Iterator[None]:
    """Restrict SDPA to one PyTorch kernel (the flash-attn package is not the only fast attention: SDPA has
    its own flash, memory-efficient and cuDNN kernels; with left padding's mask, flash does not apply)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if name not in SDPA_BACKENDS:
        raise ValueError(f"unknown SDPA backend {name!r} (use {', '.join(SDPA_BACKENDS)})")
    with sdpa_kernel([getattr(SDPBackend, SDPA_BACKENDS[name])]):
        yield


@contextmanager
def batch_size(scorer: Any, size: int) -> Iterator[None]:
    previous = scorer.batch_size
    scorer.batch_size = size
    try:
        yield
    finally:
        scorer.batch_size = previous


def apply_variant(variant: str, model: torch.nn.Module, scorer: Any, auto_batch: int) -> Any:
    """The context manager for one `--variants` entry: attn=IMPL, sdpa_backend=NAME, logits=all, compile,
    batch=N|auto."""
    key, _, value = variant.partition("=")
    if key == "attn" and value:
        return attention(model, value)
    if key == "sdpa_backend" and value in SDPA_BACKENDS:
        return sdpa_backend(value)
    if key == "logits" and value == "all":
        return logits_at_every_position(model)
    if key == "compile" and not value:
        return compiled(model)
    if key == "batch" and value:
        return batch_size(scorer, auto_batch if value == "auto" else int(value))
    raise ValueError(
        f"unknown variant {variant!r} (use attn=IMPL, sdpa_backend={'|'.join(SDPA_BACKENDS)}, logits=all, "
        "compile, batch=N|auto)"
    )


# ----------------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    shape: str = "8b"
    device: str | None = None
    dtype: str | None = None
    attn: str = "sdpa"
    compile: bool = False
    logits_to_keep: bool = True
    batch_size: str | None = None  # None: the scorer's default; "auto": auto_batch_size; else an int
    videos: int = 10
    queries_per_video: tuple[int, ...] = (1, 5, 20)
    reference_pairs: int | None = None  # None: every pair of the largest queries-per-video run
    variants: tuple[str, ...] | None = None  # None: a default set on CUDA, none on the CPU
    clip: str = "1280x720@24x16.5"
    matmul_size: int = 8192
    work_dir: str | None = None
    seed: int = 0
    cpu_threads: int | None = None  # torch intra-op threads; None leaves torch's default


# compile last: its warm-up (compilation) is the slowest step, and every result before it is saved already
GPU_VARIANTS = (
    "attn=flash_attention_2",
    "sdpa_backend=efficient",
    "sdpa_backend=cudnn",
    "attn=eager",
    "logits=all",
    "batch=auto",
    "batch=1",
    "compile",
)

# Everything shrunk so that the test suite runs the whole benchmark on a CPU in seconds.
CPU_SMOKE = Options(
    shape="tiny",
    device="cpu",
    dtype="float32",
    videos=2,
    queries_per_video=(1, 3),
    variants=("attn=eager", "sdpa_backend=math", "logits=all", "batch=2"),
    clip="320x180@24x2",
    matmul_size=256,
    # one thread: on a shared 2-core machine, OpenMP threads spinning against other processes make tiny
    # ops ~50x slower
    cpu_threads=1,
)


def parse_clip(text: str) -> ClipSpec:
    """`WIDTHxHEIGHT@FPSxSECONDS`, e.g. 1280x720@24x16.5."""
    try:
        size, _, timing = text.partition("@")
        width, height = (int(part) for part in size.split("x"))
        fps, seconds = timing.split("x")
        return ClipSpec(width=width, height=height, fps=int(fps), seconds=float(seconds))
    except ValueError:
        raise ValueError(f"--clip must look like 1280x720@24x16.5, got {text!r}") from None


def environment(device: torch.device) -> dict[str, Any]:
    import transformers

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "flash_attn_installed": importlib.util.find_spec("flash_attn") is not None,
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(
            device_name=properties.name,
            device_memory_bytes=properties.total_memory,
            multiprocessors=properties.multi_processor_count,
            cuda=torch.version.cuda,
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def _resolve(options: Options) -> tuple[ModelShape, torch.device, torch.dtype]:
    from rankvideo_cli.scoring.loading import resolve_device, resolve_dtype

    device = resolve_device(options.device)
    return SHAPES[options.shape], device, resolve_dtype(options.dtype, device)


def free_device_memory(device: torch.device) -> int:
    """Bytes the scorer may still use: free device memory on CUDA, available RAM on the CPU."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def run_benchmark(options: Options, on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run every measurement of `options` and return the report (`format_report` prints it).

    `on_update` receives the report after each run, so partial results survive a run cut short.
    """
    threads = torch.get_num_threads()
    if options.cpu_threads:
        torch.set_num_threads(options.cpu_threads)
    try:
        return _run_benchmark(options, on_update)
    finally:
        torch.set_num_threads(threads)


def _run_benchmark(options: Options, on_update: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
    from rankvideo_cli.scoring.options import ScorerOptions
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
    from rankvideo_cli.videos.config import SamplingConfig

    shape, device, dtype = _resolve(options)
    clip = parse_clip(options.clip)
    largest = max(options.queries_per_video)
    variants = options.variants
    if variants is None:
        variants = GPU_VARIANTS if device.type == "cuda" else ()
    report: dict[str, Any] = {
        "environment": environment(device),
        "options": asdict(options),
        "dtype": str(dtype).removeprefix("torch."),
        "shape": asdict(shape),
        "parameters": {**parameter_counts(shape), "total": sum(parameter_counts(shape).values())},
    }

    log(f"measuring the {report['dtype']} matmul rate ({options.matmul_size}^3)")
    matmul = measure_matmul_tflops(device, dtype, options.matmul_size)
    report["matmul_tflops"] = matmul

    work_dir = Path(options.work_dir) if options.work_dir else Path(tempfile.mkdtemp(prefix="rankvideo-gpu-"))
    log(f"synthesizing and decoding {options.videos} clips ({options.clip}) in {work_dir}")
    sampling = SamplingConfig()
    clips = prepare_clips(work_dir / "clips", clip, options.videos, sampling)

    log(f"building a random {shape.name} model on {device} ({report['dtype']}, attn {options.attn})")
    with stopwatch(device) as build:
        model = build_random_model(shape, device, dtype, options.attn, options.seed)
    processor = load_processor()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    free_after_weights = free_device_memory(device)

    reference = ReferencePath(model, processor)
    probe = reference.inputs(Pair(0, make_queries(1)[0]), clips)
    grid_thw = [int(v) for v in probe["video_grid_thw"][0].tolist()]
    grid = VideoGrid(*grid_thw)
    video_tokens = int((probe["input_ids"] == processor.video_token_id).sum())
    prompt_tokens = int(probe["input_ids"].shape[1])
    auto_batch = auto_batch_size(free_after_weights, prompt_tokens, shape, dtype)
    report["inputs"] = {
        "clip": asdict(clip),
        "videos": options.videos,
        "frames": int(clips.videos[0].frames.shape[0]),
        "frame_size": list(clips.videos[0].size),
        "video_grid_thw": grid_thw,
        "video_tokens_per_pair": video_tokens,
        "prompt_tokens_first_query": prompt_tokens,
        "decode_seconds_per_video": statistics.fmean(clips.decode_seconds),
    }
    report["memory"] = {
        "weights_bytes": weights,
        "free_after_weights_bytes": free_after_weights,
        "auto_batch_size": auto_batch,
        "pair_activation_bytes_bound": pair_activation_bytes(prompt_tokens, shape, dtype),
        "model_build_seconds": build[0],
    }

    if options.batch_size is None:
        chosen_batch = None
    elif options.batch_size == "auto":
        chosen_batch = auto_batch
    else:
        chosen_batch = int(options.batch_size)
    settings = ScorerOptions(batch_size=chosen_batch, attn_implementation=options.attn)
    scorer = Qwen3VLScorer(model, processor, options=settings)
    meter = StageMeter(model, shape, device, processor.tokenizer.pad_token_id)
    queries = make_queries(largest)
    pairs = [Pair(video, query) for video in range(options.videos) for query in queries]
    pairs = pairs[: options.reference_pairs] if options.reference_pairs else pairs

    runs: list[dict[str, Any]] = []
    report["runs"] = runs
    report["flops_per_pair_nominal"] = nominal_flops(shape, prompt_tokens, grid, options)

    def finish(record: dict[str, Any], logit_positions: int) -> None:
        """Derived figures, then hand the report out (so a run cut short still leaves its results)."""
        if "error" not in record:
            add_utilisation(record, matmul)
            rows = min(record["batch_size"], record["queries_per_video"])
            record["predicted_peak_bytes"] = (
                weights
                + rows * pair_activation_bytes(prompt_tokens, shape, dtype, logit_positions=logit_positions)
                + vision_activation_bytes(grid.patches, shape, dtype)
            )
        runs.append(record)
        log(format_run(record))
        if on_update is not None:
            on_update(report)

    log(f"reference path: {len(pairs)} pairs, one per forward")
    record, reference_scores = run_reference(reference, pairs, clips, meter)
    finish(record, logit_positions=prompt_tokens)

    kept = 1 if options.logits_to_keep else prompt_tokens
    with _main_run_options(model, options):
        largest_scores: list[Any] = []
        for count in options.queries_per_video:
            log(f"rankvideo path: {count} queries x {options.videos} videos")
            record, scores = run_rankvideo(scorer, queries[:count], clips, meter)
            if count == largest:
                largest_scores = scores
                record["agreement"] = score_deltas(scores[: len(reference_scores)], reference_scores)
            finish(record, logit_positions=kept)
        log(f"rankvideo pipeline (score_pairs, decode threads): {largest} queries x {options.videos} videos")
        record, scores = run_pipeline(scorer, queries, clips, meter, Path(tempfile.mkdtemp(dir=work_dir)))
        record["agreement"] = score_deltas(scores[: len(reference_scores)], reference_scores)
        finish(record, logit_positions=kept)
        for variant in variants:
            log(f"variant {variant}: {largest} queries x {options.videos} videos")
            try:
                with apply_variant(variant, model, scorer, auto_batch):
                    record, scores = run_rankvideo(scorer, queries, clips, meter, name=f"rankvideo {variant}")
                record["agreement"] = score_deltas(scores[: len(reference_scores)], reference_scores)
                record["agreement_with_default"] = score_deltas(scores, largest_scores)
            except Exception as error:  # an unavailable kernel or a failed compile is a result too
                record = {"name": f"rankvideo {variant}", "error": f"{type(error).__name__}: {error}"[:300]}
                _release_device_memory(device)
            finish(record, logit_positions=prompt_tokens if variant == "logits=all" else kept)
    meter.close()
    return report


def _release_device_memory(device: torch.device) -> None:
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextmanager
def _main_run_options(model: torch.nn.Module, options: Options) -> Iterator[None]:
    """--compile and --logits-to-keep off apply to every rankvideo run (not to the reference path)."""
    with contextlib.ExitStack() as stack:
        if options.compile:
            stack.enter_context(compiled(model))
        if not options.logits_to_keep:
            stack.enter_context(logits_at_every_position(model))
        yield


def nominal_flops(shape: ModelShape, prompt_tokens: int, grid: VideoGrid, options: Options) -> dict[str, Any]:
    """Analytic FLOPs per pair for the nominal prompt, per path, next to REFERENCE.md's ~38 TFLOP figure."""
    kept = 1 if options.logits_to_keep else prompt_tokens
    table: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "reference": flops_per_pair(shape, prompt_tokens, grid, pairs_per_vision_pass=1, kept_logits=prompt_tokens),
    }
    for count in options.queries_per_video:
        table[f"rankvideo_q{count}"] = flops_per_pair(
            shape, prompt_tokens, grid, pairs_per_vision_pass=count, kept_logits=kept
        )
    table["reference_md_counting"] = reference_md_flops(shape, prompt_tokens, grid)
    return table


# ----------------------------------------------------------------------------------------------------
# Report and command line
# ----------------------------------------------------------------------------------------------------


RUN_HEADER = (
    f"{'run':<32} {'Q':>3} {'pairs':>5} {'batch':>5} {'pairs/s':>8} {'+decode':>8} {'decode':>7} "
    f"{'prep':>7} {'vision':>7} {'LM':>7} {'peak GiB':>8} {'pred GiB':>8} {'TFLOP/pr':>8} {'MFU':>6}"
)


def format_run(run: dict[str, Any]) -> str:
    """One table row: seconds per stage, throughput, memory (measured and predicted), FLOPs, MFU."""
    if "error" in run:
        return f"{run['name']:<32} unavailable: {run['error']}"
    seconds = run["seconds"]
    return (
        f"{run['name']:<32} {run['queries_per_video']:>3} {run['pairs']:>5} {run['batch_size']:>5} "
        f"{run['pairs_per_s']:>8.2f} {run['pairs_per_s_with_decode']:>8.2f} {seconds['decode']:>7.2f} "
        f"{seconds['preprocess_and_other']:>7.2f} {seconds['vision']:>7.2f} "
        f"{seconds['language_model']:>7.2f} "
        f"{_gib(run['peak_memory_bytes']):>8} {_gib(run['predicted_peak_bytes']):>8} "
        f"{_tera(run['flops_per_pair']):>8} {run['mfu']:>6.1%}"
    )


def format_report(report: dict[str, Any]) -> str:
    """The human summary: inputs, FLOPs per pair, one line per run, agreement, memory model."""
    env, inputs, memory = report["environment"], report["inputs"], report["memory"]
    options = report["options"]
    lines = [
        f"GPU throughput: {env['device_name']} ({env['device']}), {report['dtype']}, "
        f"shape {options['shape']}, attn {options['attn']}, compile {'on' if options['compile'] else 'off'}, "
        f"logits_to_keep {'on' if options['logits_to_keep'] else 'off'}; torch {env['torch']}, "
        f"transformers {env['transformers']}",
        f"measured {report['dtype']} matmul rate: {report['matmul_tflops']:.3g} TFLOP/s "
        f"({options['matmul_size']}^3, median of 10)",
        f"inputs: {inputs['videos']} clips {options['clip']} -> {inputs['frames']} frames at "
        f"{inputs['frame_size'][0]}x{inputs['frame_size'][1]}, grid {inputs['video_grid_thw']}, "
        f"{inputs['video_tokens_per_pair']} video tokens, "
        f"{inputs['prompt_tokens_first_query']} prompt tokens; "
        f"decode {inputs['decode_seconds_per_video'] * 1000:.0f} ms/video",
        f"parameters: {report['parameters']['total'] / 1e9:.3f} B, "
        f"weights {_gib(memory['weights_bytes'])} GiB, model built in {memory['model_build_seconds']:.1f} s",
    ]
    nominal = report["flops_per_pair_nominal"]
    lines.append(f"analytic TFLOP per pair at {nominal['prompt_tokens']} prompt tokens:")
    for name, parts in nominal.items():
        if isinstance(parts, dict):
            detail = ", ".join(f"{key} {_tera(value)}" for key, value in parts.items() if key != "total")
            lines.append(f"  {name:<14} {_tera(parts['total']):>6}  ({detail})")
    lines.append(
        f"  REFERENCE.md's ~38 TFLOP counts LM matmuls + LM attention + vision-block matmuls only: "
        f"{_tera(nominal['reference_md_counting'])} here"
    )
    lines += ["", RUN_HEADER, "-" * len(RUN_HEADER)]
    lines += [format_run(run) for run in report["runs"]]
    lines.append("(seconds per run; pairs/s excludes decode, +decode adds it serially, except 'pipeline', where decode")
    lines.append(" threads overlap scoring and both are end to end; MFU = executed FLOPs / scoring time / measured")
    lines.append(" matmul rate; 'pred' is the memory model's bound, not a measurement)")
    for run in report["runs"]:
        if "agreement" in run:
            agreement = run["agreement"]
            lines.append(
                f"{run['name']} vs reference over {agreement['pairs']} pairs: max |d logit_delta| "
                f"{agreement['max_abs_logit_delta']:.3g}, "
                f"|d logprob_yes| {agreement['max_abs_logprob_yes']:.3g}, "
                f"|d logprob_no| {agreement['max_abs_logprob_no']:.3g}, "
                f"|d p_yes| {agreement['max_abs_p_yes']:.3g} "
                f"(reference logit_delta spread {agreement['reference_logit_delta_spread']:.3g})"
            )
    lines.append(
        f"auto batch size: {memory['auto_batch_size']} pairs per forward with "
        f"{_gib(memory['free_after_weights_bytes'])} GiB free after the weights "
        f"(bound {memory['pair_activation_bytes_bound'] / 1e9:.2f} GB per pair)"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(
        description="RankVideo GPU throughput: random-weight Qwen3-VL-8B shape, reference vs rankvideo path."
    )
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny shape on the CPU in float32 (tests)")
    parser.add_argument(
        "--plan",
        action="store_true",
        help="print the analytic FLOPs, time floor and batch sizes only (no device, no model), for RankVideo and "
        "for Qwen3-VL-Reranker 2B and 8B at MultiVENT's shapes",
    )
    parser.add_argument(
        "--assume-tflops",
        type=float,
        default=790.0,
        help="matmul rate for --plan's floor (default 790, H100/H200 bf16 as measured elsewhere)",
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), help="model shape (default 8b)")
    parser.add_argument("--device", help="cuda, cuda:N or cpu (default: cuda if available)")
    parser.add_argument("--dtype", help="bfloat16, float16 or float32 (default: bfloat16 on CUDA)")
    parser.add_argument("--attn", choices=("sdpa", "eager", "flash_attention_2"), help="default sdpa")
    parser.add_argument("--compile", action="store_true", help="torch.compile vision tower and LM")
    parser.add_argument("--logits-to-keep", choices=("on", "off"), help="default on (last position only)")
    parser.add_argument("--batch-size", help="pairs per forward: N, or auto (default: the scorer's default)")
    parser.add_argument("--videos", type=int, help="clips to synthesize and score (default 10)")
    parser.add_argument("--queries-per-video", help="comma list (default 1,5,20)")
    parser.add_argument("--reference-pairs", type=int, help="reference-path pairs (default: videos x max Q)")
    parser.add_argument(
        "--variants",
        help=f"comma list of attn=IMPL, sdpa_backend=NAME, logits=all, compile, batch=N|auto, or 'none' "
        f"(default on CUDA: {','.join(GPU_VARIANTS)})",
    )
    parser.add_argument("--clip", help="synthesized clip WIDTHxHEIGHT@FPSxSECONDS (default 1280x720@24x16.5)")
    parser.add_argument("--matmul-size", type=int, help="square bf16 matmul for the peak rate (default 8192)")
    parser.add_argument("--work-dir", help="where clips are written (reused when present)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--cpu-threads", type=int, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--json", help="write the full report here")
    args = parser.parse_args(argv)

    base = CPU_SMOKE if args.cpu_smoke else Options()
    overrides: dict[str, Any] = {
        name: value
        for name, value in {
            "shape": args.shape,
            "device": args.device,
            "dtype": args.dtype,
            "attn": args.attn,
            "batch_size": args.batch_size,
            "videos": args.videos,
            "reference_pairs": args.reference_pairs,
            "clip": args.clip,
            "matmul_size": args.matmul_size,
            "work_dir": args.work_dir,
            "seed": args.seed,
            "cpu_threads": args.cpu_threads,
        }.items()
        if value is not None
    }
    if args.compile:
        overrides["compile"] = True
    if args.logits_to_keep is not None:
        overrides["logits_to_keep"] = args.logits_to_keep == "on"
    if args.queries_per_video:
        overrides["queries_per_video"] = tuple(int(part) for part in args.queries_per_video.split(","))
    if args.variants:
        overrides["variants"] = () if args.variants == "none" else tuple(args.variants.split(","))
    return Options(**{**asdict(base), **overrides}), args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_args(argv)
    json_path = args.json
    if args.plan:
        from rankvideo_cli.scoring.loading import resolve_dtype

        dtype = resolve_dtype(options.dtype or "bfloat16", torch.device("cpu"))
        result = plan(SHAPES[options.shape], dtype, options.queries_per_video, args.assume_tflops)
        result["prompts"] = prompt_plan(SHAPES[options.shape], dtype, args.assume_tflops)
        result["rerankers"] = reranker_plan(dtype, args.assume_tflops)
        if json_path:
            Path(json_path).write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
        print(format_plan(result))
        print(format_prompt_plan(result["prompts"]))
        print(format_reranker_plan(result["rerankers"]))
        return 0

    def save(report: dict[str, Any]) -> None:
        if json_path:
            path = Path(json_path)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.with_suffix(".tmp").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            path.with_suffix(".tmp").replace(path)

    report = run_benchmark(options, on_update=save)
    print(format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
