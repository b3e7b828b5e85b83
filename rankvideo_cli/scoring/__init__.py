"""RankVideo scoring: the prompt, the Qwen3-VL scorer, the `tiny-random` test model and `VLMReranker`.

- `base`: `PairScore` and the `Scorer` protocol the pipeline depends on.
- `prompt`: the reference's exact prompt and model inputs (token ids equal to transformers 4.57 / vLLM).
- `training_prompt`: the authors' training prompt and objective (`--prompt training`, experimental);
  `prefix_cache`: its per-video prefix computed once, every query's suffix packed against it.
- `loading`: hub id / local directory / `tiny-random` -> model + processor, with one-line `ModelLoadError`s;
  `hf`: `LoadedModel` and quiet weight loading, shared by loading, the scorer and the tiny model.
- `model_files`: a `--model` as files on this machine (`resolve_model_offline`), `chat_template`: its template
  rendered as the processor would, `runtime`: device, dtype and attention by name: torch-free, so a fingerprint
  is read without loading (`loading.predict_fingerprint`).
- `options`: `ScorerOptions` (how to load a scorer, as plain data: the workers' and every entry point's);
  `deferred`: `DeferredScorer` (the weights load only when a pair needs scoring).
- `memory`: batch sizes from the model's shape and the free device memory; `generate`: `explain`'s answers.
- `qwen3vl`: `Qwen3VLScorer` (one vision pass per video, batches padded at their end, the last position only);
  `rerankers`: each reranker's prompt, frames and score behind one registry; `answers`: RankVideo's score rules.
- `tiny`: the offline random-weight Qwen3-VL with Qwen's real vocabulary.
- `reranker`: `VLMReranker`, the model card's API.

Submodules import torch and transformers; importing this package does not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rankvideo_cli.scoring.loading import load_scorer
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
    from rankvideo_cli.scoring.reranker import VLMReranker

__all__ = ["Qwen3VLScorer", "VLMReranker", "load_scorer"]

_LAZY = {
    "Qwen3VLScorer": "rankvideo_cli.scoring.qwen3vl",
    "VLMReranker": "rankvideo_cli.scoring.reranker",
    "load_scorer": "rankvideo_cli.scoring.loading",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
