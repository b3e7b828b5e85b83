"""The training prompt's prefix cache on the CPU (issue 24): pairs/s with and without reuse at 1, 2.3, 10 and
23 queries per video, next to what the FLOP model (`gpu_plan.prompt_flops_per_pair`) predicts for the same shape
and token counts.

A mid-size random Qwen3-VL (Qwen's vocabulary, 8 layers of width 512, GQA 4:1, a 4-block vision tower) scores
random frames at 256x480 through the real `Qwen3VLScorer`: processor, one vision pass per video, then either
one full pass per pair (`prefix_cache=False`) or the video's prefix once and every query's suffix packed against
it. Both modes run alternately, `--repeats` times; the fastest of each is reported. The scores of the two modes
are compared too (they must agree within 1e-5 in float32).

`--profile` adds, after the timed runs, one more run of each mode with the time spent inside torch's attention
(split by how it was called: with an explicit mask, `is_causal`, or neither, which is the vision tower) and
linear layers, and times attention at the full pass's shape with a mask and with `is_causal`: the FLOP model
counts causal attention at half the square, which only `is_causal` gets.

    python benchmarks/prefix_cache.py [--frames 16] [--repeats 2] [--profile] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_plan import TRAINING_PREFIX_TOKENS, TRAINING_SUFFIX_TOKENS, grid_for, lm_flops, prompt_flops_per_pair

from rankvideo_cli.scoring.memory import QWEN3_VL_8B, ModelShape

MID = dataclasses.replace(
    QWEN3_VL_8B,
    name="mid",
    text_hidden=512,
    text_layers=8,
    text_heads=8,
    text_kv_heads=2,
    head_dim=64,
    text_intermediate=1536,
    mrope_section=(16, 8, 8),
    vision_depth=4,
    vision_hidden=256,
    vision_intermediate=512,
    vision_heads=4,
    deepstack_layers=(1, 2, 3),
)

# (queries per video, the videos' query counts): 2.3 is seven videos of 2 and three of 3
WORKLOADS: list[tuple[float, list[int]]] = [
    (1.0, [1, 1, 1, 1]),
    (2.3, [2] * 7 + [3] * 3),
    (10.0, [10, 10]),
    (23.0, [23]),
]
_WORDS = [
    "a",
    "person",
    "rides",
    "a",
    "bicycle",
    "through",
    "a",
    "crowded",
    "market",
    "at",
    "night",
    "while",
    "it",
    "rains",
    "near",
    "the",
    "river",
]


def queries_for(video: int, count: int) -> list[str]:
    """`count` distinct queries of 3 to 16 words."""
    return [" ".join(_WORDS[: 3 + (video * 7 + index * 5) % 14]) + f" {video}-{index}" for index in range(count)]


def random_video(seed: int, frames: int) -> Any:
    from rankvideo_cli.videos.frames import SampledVideo

    generator = torch.Generator().manual_seed(seed)
    return SampledVideo(
        path=f"random-{seed}.mp4",
        frames=torch.randint(0, 256, (frames, 3, 256, 480), generator=generator, dtype=torch.uint8),
        source_fps=25.0,
        total_frames=frames * 12,
        frame_indices=torch.linspace(0, frames * 12 - 1, frames).round().long().tolist(),
        source_size=(720, 1280),
    )


def build_scorers(seed: int) -> tuple[Any, Any]:
    from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

    from rankvideo_cli.scoring.options import ScorerOptions
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
    from rankvideo_cli.scoring.tiny import ensure_tiny_model

    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration._from_config(
        MID.config(), dtype=torch.float32, attn_implementation="sdpa"
    ).eval()
    processor = AutoProcessor.from_pretrained(str(ensure_tiny_model()))
    return (
        Qwen3VLScorer(model, processor, model_id="mid-random", options=ScorerOptions(prompt="training")),
        Qwen3VLScorer(
            model, processor, model_id="mid-random", options=ScorerOptions(prompt="training", prefix_cache=False)
        ),
    )


def time_workload(scorer: Any, videos: list[Any], counts: list[int]) -> tuple[float, list[float]]:
    deltas: list[float] = []
    start = time.perf_counter()
    for number, (video, count) in enumerate(zip(videos, counts, strict=True)):
        deltas += [score.logit_delta for score in scorer.score_video(queries_for(number, count), video)]
    return time.perf_counter() - start, deltas


@contextmanager
def op_seconds() -> Iterator[Counter[str]]:
    """Wall seconds spent inside `F.scaled_dot_product_attention` (keyed by how it was called) and `F.linear`
    while the block runs; transformers calls both through `torch.nn.functional`, so wrapping them there counts
    every call. The CPU runs them synchronously, so wall time is their time."""
    seconds: Counter[str] = Counter()
    attention, linear = F.scaled_dot_product_attention, F.linear

    def timed_attention(*args: Any, **kwargs: Any) -> Any:
        kind = "masked" if kwargs.get("attn_mask") is not None else "causal" if kwargs.get("is_causal") else "plain"
        start = time.perf_counter()
        try:
            return attention(*args, **kwargs)
        finally:
            seconds[f"attention_{kind}"] += time.perf_counter() - start

    def timed_linear(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return linear(*args, **kwargs)
        finally:
            seconds["linear"] += time.perf_counter() - start

    F.scaled_dot_product_attention, F.linear = timed_attention, timed_linear
    try:
        yield seconds
    finally:
        F.scaled_dot_product_attention, F.linear = attention, linear


def profile_workload(scorer: Any, videos: list[Any], counts: list[int]) -> dict[str, float]:
    with op_seconds() as seconds:
        total, _ = time_workload(scorer, videos, counts)
    return {"total": total, **seconds, "rest": total - sum(seconds.values())}


def masked_vs_causal_attention(batch: int, heads: int, tokens: int, head_dim: int, repeats: int = 10) -> dict:
    """Seconds of one causal attention call at this shape given as an explicit boolean mask (as a padded batch
    gets it) and as `is_causal` (what the FLOP model's half square assumes)."""
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(batch, heads, tokens, head_dim, generator=generator) for _ in range(3))
    mask = torch.ones(tokens, tokens, dtype=torch.bool).tril().expand(batch, 1, tokens, tokens)
    calls = {
        "masked_s": lambda: F.scaled_dot_product_attention(query, key, value, attn_mask=mask),
        "causal_s": lambda: F.scaled_dot_product_attention(query, key, value, is_causal=True),
    }
    best = dict.fromkeys(calls, float("inf"))
    for _ in range(repeats + 1):  # alternately, so both see the same moments of a noisy machine
        for name, call in calls.items():
            best[name] = min(best[name], _seconds(call))
    return {"shape": [batch, heads, tokens, head_dim], **best, "ratio": best["masked_s"] / best["causal_s"]}


def _seconds(call: Any) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def token_counts(scorer: Any, video: Any) -> tuple[int, float]:
    """The prefix's tokens and the workload queries' mean suffix tokens."""
    from rankvideo_cli.scoring.prompt import encode_video
    from rankvideo_cli.scoring.training_prompt import split_training_prompts

    queries = [query for number, (_, counts) in enumerate(WORKLOADS) for query in queries_for(number, max(counts))]
    split = split_training_prompts(scorer.processor, queries, encode_video(scorer.processor, video))
    return len(split.prefix_ids), sum(map(len, split.suffix_ids)) / len(split.suffix_ids)


def run(frames: int, repeats: int, seed: int, profile: bool = False) -> dict[str, Any]:
    torch.set_grad_enabled(False)
    reused_scorer, full_scorer = build_scorers(seed)
    prefix_tokens, suffix_tokens = token_counts(reused_scorer, random_video(0, frames))
    full_prompt_tokens = prefix_tokens + round(suffix_tokens)  # one full pass's prompt, as the FLOP model sees it
    grid = grid_for(frames, 256, 480, MID)
    rows = []
    for queries_per_video, counts in WORKLOADS:
        videos = [random_video(100 + number, frames) for number in range(len(counts))]
        best = {"on": float("inf"), "off": float("inf")}
        scores: dict[str, list[float]] = {}
        for _ in range(repeats):
            for mode, scorer in (("off", full_scorer), ("on", reused_scorer)):
                seconds, scores[mode] = time_workload(scorer, videos, counts)
                best[mode] = min(best[mode], seconds)
        pairs = sum(counts)
        predicted = {
            mode: prompt_flops_per_pair(
                MID,
                grid,
                queries_per_video,
                prompt="training",
                prefix_cache=mode == "on",
                prefix_tokens=prefix_tokens,
                suffix_tokens=round(suffix_tokens),
            )
            for mode in ("on", "off")
        }
        # a video's prompts batched together differ in length, so the batch is padded and its attention masked
        padded_square = lm_flops(MID, full_prompt_tokens, 1)["lm_attention"] if max(counts) > 1 else 0
        rows.append(
            {
                "queries_per_video": queries_per_video,
                "videos": len(counts),
                "pairs": pairs,
                "pairs_per_s_without_reuse": pairs / best["off"],
                "pairs_per_s_with_reuse": pairs / best["on"],
                "measured_speedup": best["off"] / best["on"],
                "predicted_speedup": predicted["off"] / predicted["on"],
                "predicted_speedup_padded_square": (predicted["off"] + padded_square) / predicted["on"],
                "gflop_per_s_without_reuse": predicted["off"] * pairs / best["off"] / 1e9,
                "gflop_per_s_with_reuse": predicted["on"] * pairs / best["on"] / 1e9,
                "max_abs_score_difference": max(abs(a - b) for a, b in zip(scores["on"], scores["off"], strict=True)),
            }
        )
        if profile:
            rows[-1]["profile"] = {
                mode: profile_workload(scorer, videos, counts)
                for mode, scorer in (("off", full_scorer), ("on", reused_scorer))
            }
    result = {
        "shape": dataclasses.asdict(MID),
        "frames": frames,
        "frame_size": [256, 480],
        "prefix_tokens": prefix_tokens,
        "mean_suffix_tokens": suffix_tokens,
        "suffix_batch_size": reused_scorer.batch_size,
        "full_pass_batch_size": full_scorer.batch_size,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "rows": rows,
    }
    if profile:
        shape = (full_scorer.batch_size, MID.text_heads, full_prompt_tokens, MID.head_dim)
        result["masked_vs_causal_attention"] = masked_vs_causal_attention(*shape)
        result["attention_share_of_full_pass"] = {
            MID.name: attention_share(MID, full_prompt_tokens),
            QWEN3_VL_8B.name: attention_share(QWEN3_VL_8B, TRAINING_PREFIX_TOKENS + TRAINING_SUFFIX_TOKENS),
        }
    return result


def attention_share(shape: ModelShape, prompt_tokens: int) -> float:
    """The FLOP model's (causal) attention as a share of one full pass's language-model FLOPs."""
    flops = lm_flops(shape, prompt_tokens, kept_logits=1)
    return flops["lm_attention"] / sum(flops.values())


def format_result(result: dict[str, Any]) -> str:
    lines = [
        f"mid shape (8 x 512, GQA 8:2, vocab 151936), float32 on {result['torch_threads']} CPU threads; "
        f"{result['frames']} frames at 256x480: {result['prefix_tokens']}-token prefix, "
        f"{result['mean_suffix_tokens']:.1f}-token suffixes on average; batches: "
        f"{result['suffix_batch_size']} suffixes / {result['full_pass_batch_size']} full prompts per forward",
        "",
        "| queries per video | pairs | pairs/s full pass | pairs/s prefix cache | measured speedup | FLOP model "
        "| max abs score difference |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['queries_per_video']:g} | {row['pairs']} | {row['pairs_per_s_without_reuse']:.2f} | "
            f"{row['pairs_per_s_with_reuse']:.2f} | {row['measured_speedup']:.2f}x | "
            f"{row['predicted_speedup']:.2f}x | {row['max_abs_score_difference']:.1e} |"
        )
    if "masked_vs_causal_attention" in result:
        lines += ["", *format_profile(result)]
    return "\n".join(lines)


def format_profile(result: dict[str, Any]) -> list[str]:
    lines = [
        "seconds of one run, by where they went (attention masked: an explicit mask; causal: is_causal; plain: "
        "neither, the vision tower)",
        "",
        "| queries per video | mode | total | attention, masked | attention, causal | attention, plain | linear "
        "| rest |",
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in result["rows"]:
        for mode, label in (("off", "full pass"), ("on", "prefix cache")):
            seconds = row["profile"][mode]
            parts = ("total", "attention_masked", "attention_causal", "attention_plain", "linear", "rest")
            cells = " | ".join(f"{seconds.get(part, 0.0):.2f}" for part in parts)
            lines.append(f"| {row['queries_per_video']:g} | {label} | {cells} |")
    attention = result["masked_vs_causal_attention"]
    shares = ", ".join(f"{name} {share:.1%}" for name, share in result["attention_share_of_full_pass"].items())
    square = ", ".join(f"{row['predicted_speedup_padded_square']:.2f}x" for row in result["rows"])
    lines += [
        "",
        f"attention at {'x'.join(map(str, attention['shape']))} (the full pass's batch): "
        f"{attention['masked_s'] * 1e3:.1f} ms with an explicit causal mask, {attention['causal_s'] * 1e3:.1f} ms "
        f"with is_causal ({attention['ratio']:.2f}x)",
        f"FLOP model counting a padded full pass's attention as the whole square: {square}",
        f"causal attention's share of a full pass's language-model FLOPs: {shares}",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16, help="frames per video (even; default 16)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each mode (the fastest counts)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--profile", action="store_true", help="also: where each mode's seconds go")
    parser.add_argument("--json", type=Path, help="also write the result here")
    args = parser.parse_args(argv)
    result = run(args.frames, args.repeats, args.seed, profile=args.profile)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
