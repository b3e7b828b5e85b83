"""Predicted scoring speed on a GPU, for the dry run's "predicted GPU time": the analytic floors of
`benchmarks/gpu_throughput.py --plan` (benchmarks/README.md), which assume 790 TFLOP/s. They are predictions, not
measurements: no GPU has measured this project's pairs/s yet, and real runs are slower than the floor (attention
kernels, padding, decode stalls). A GPU the table does not know gets no prediction, and says so.

Torch-free: the model's size is read from its config.json, the GPU's name is the caller's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

# GPUs the floor's assumed rate stands for (bf16 dense, as measured on them elsewhere)
KNOWN_GPUS = ("H100", "H200")
ASSUMED_TFLOPS = 790

# {(reranker, size): [(queries per video, pairs/s floor)]}, from benchmarks/README.md's plan: RankVideo 8B at its
# nominal 32 frames of 256x480; Qwen3-VL-Reranker at MultiVENT's 70 s 720p videos fitted to its token budget.
PAIRS_PER_SECOND = {
    ("rankvideo", "8B"): [(1.0, 20.3), (2.3, 22.7), (10.0, 24.5)],
    ("qwen3-vl-reranker", "2B"): [(1.0, 16.4), (2.3, 21.8), (10.0, 27.0)],
    ("qwen3-vl-reranker", "8B"): [(1.0, 5.4), (2.3, 6.0), (10.0, 6.5)],
}
# Qwen3-VL's language models by (hidden size, layers)
SIZES: dict[tuple[object, object], str] = {(4096, 36): "8B", (2048, 28): "2B"}
# the hub ids of known size, for a model not (yet) on this machine: a login node's dry run
HUB_SIZES = {
    "hltcoe/rankvideo": "8B",
    "qwen/qwen3-vl-reranker-2b": "2B",
    "qwen/qwen3-vl-reranker-8b": "8B",
    "qwen/qwen3-vl-2b-instruct": "2B",
    "qwen/qwen3-vl-8b-instruct": "8B",
}


@dataclass(frozen=True)
class Prediction:
    """Predicted GPU seconds for `pairs` pairs, or why there is none (`seconds` None, `reason` set)."""

    pairs: int
    seconds: float | None
    pairs_per_second: float | None
    basis: str

    def as_dict(self) -> dict:
        return {
            "pairs": self.pairs,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
            "pairs_per_second": self.pairs_per_second,
            "basis": self.basis,
        }


def model_size(model_dir: Path | None, model_id: str | None = None) -> str | None:
    """'8B' or '2B' from a Qwen3-VL config.json (its text model's width and depth), else from a known hub id,
    else None."""
    by_id = HUB_SIZES.get((model_id or "").lower())
    if model_dir is None:
        return by_id
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return by_id
    text = config.get("text_config", config) if isinstance(config, dict) else {}
    return SIZES.get((text.get("hidden_size"), text.get("num_hidden_layers")))


def known_gpu(name: str) -> str | None:
    """The table's family of a CUDA device name ('NVIDIA H100 80GB HBM3' -> 'H100'), or None."""
    return next((family for family in KNOWN_GPUS if family in name.upper()), None)


def predict(pairs: int, queries_per_video: float, reranker: str, size: str | None, gpu: str | None) -> Prediction:
    """Seconds to score `pairs` on `gpu` (a device name; None: the table's GPUs) at `queries_per_video`."""
    if pairs == 0:
        return Prediction(0, 0.0, None, "nothing to score")
    rows = PAIRS_PER_SECOND.get((reranker, size or ""))
    if rows is None:
        return Prediction(pairs, None, None, f"no prediction for {reranker} at size {size or 'unknown'}")
    if gpu is not None and known_gpu(gpu) is None:
        return Prediction(pairs, None, None, f"no prediction for {gpu} (known: {', '.join(KNOWN_GPUS)})")
    # the row nearest the plan's queries per video, on a log scale (1, 2.3 and 10 are a decade apart)
    rate = min(rows, key=lambda row: abs(_log(row[0]) - _log(max(queries_per_video, 1.0))))[1]
    where = known_gpu(gpu) if gpu is not None else "/".join(KNOWN_GPUS)
    basis = (
        f"PREDICTED, not measured: the analytic floor for {reranker} {size} on {where} at an assumed "
        f"{ASSUMED_TFLOPS} TFLOP/s (benchmarks/README.md); expect slower"
    )
    return Prediction(pairs, pairs / rate, rate, basis)


def _log(value: float) -> float:
    import math

    return math.log10(value)
