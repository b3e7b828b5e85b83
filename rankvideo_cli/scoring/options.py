"""How to load a scorer, as plain data: what `rerank` hands to each device worker (a separate process) so that
every worker loads the very model the user asked for. Importing this module imports no torch.

`DeferredScorer` is the scorer that loads its model only when there is a video to score.

A rerun whose pairs are all in the score store (a finished job run again, a SLURM array task requeued after it
wrote its last score) needs the model's fingerprint, to find its scores, and nothing else: loading 17 GB of
weights onto a GPU to write a file is minutes of a GPU node for nothing. `DeferredScorer` answers `fingerprint`
from the processor alone (`loading.predict_fingerprint`) and loads the weights on the first `score_video`. The
loaded scorer's fingerprint must equal the predicted one, or nothing is scored (the store would mix two models).
Where the fingerprint cannot be known beforehand (a hub id that may update online), the model loads at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rankvideo_cli.errors import ModelLoadError, UsageError
from rankvideo_cli.options import at_least
from rankvideo_cli.scoring.base import INFERENCE_PROMPT, check_prompt_options

if TYPE_CHECKING:
    from rankvideo_cli.scoring.base import PairScore
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
    from rankvideo_cli.videos.frames import SampledVideo


@dataclass(frozen=True)
class ScorerOptions:
    model: str = "hltcoe/RankVideo"
    revision: str | None = None
    cache_dir: str | None = None  # the Hugging Face cache directory
    dtype: str | None = None
    device: str | None = None
    attn_implementation: str | None = None
    score_mode: str = "full"
    batch_size: int | None = None
    prompt: str = INFERENCE_PROMPT  # or TRAINING_PROMPT (experimental: scoring.training_prompt)
    prefix_cache: bool = True  # the training prompt's per-video prefix reuse (off: one full pass per pair)

    def _model_arguments(self) -> dict[str, Any]:
        """Which model, and how it loads: the arguments `load_scorer` and `predict_fingerprint` share."""
        return {
            "model": self.model,
            "revision": self.revision,
            "cache_dir": Path(self.cache_dir) if self.cache_dir is not None else None,
            "dtype": self.dtype,
            "device": self.device,
            "attn_implementation": self.attn_implementation,
            "score_mode": self.score_mode,
            "prompt": self.prompt,
            "prefix_cache": self.prefix_cache,
        }

    def load(self) -> Qwen3VLScorer:
        from rankvideo_cli.scoring.loading import load_scorer

        return load_scorer(**self._model_arguments(), batch_size=self.batch_size)

    def predicted_fingerprint(self) -> dict[str, str] | None:
        """`load().fingerprint()` without loading the weights, or None when that cannot be known beforehand."""
        from rankvideo_cli.scoring.loading import predict_fingerprint

        return predict_fingerprint(**self._model_arguments())

    def check(self) -> None:
        """Refuse options that cannot work, before anything loads (no torch)."""
        check_model_name(self.model)
        at_least("batch_size", self.batch_size)
        check_prompt_options(self.prompt, self.score_mode, self.attn_implementation, self.prefix_cache)

    def check_available(self) -> None:
        """Refuse a model that cannot be loaded from here (not cached and no hub; not a checkpoint), without
        torch: before a run writes anything."""
        from rankvideo_cli.scoring.loading import check_model_available

        arguments = self._model_arguments()
        check_model_available(arguments["model"], arguments["revision"], arguments["cache_dir"])

    def deferred(self) -> DeferredScorer:
        """A scorer that loads the model only when a video is to be scored (`DeferredScorer`)."""
        return DeferredScorer(self)

    def on_device(self, device: str) -> ScorerOptions:
        return replace(self, device=device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScorerOptions:
        return cls(**data)


def check_model_name(model: str) -> None:
    """A near miss of `tiny-random` (`tiny_random`, `tiny-randm`) is a typo, not a hub id to look up for
    half a minute: say so at once. An existing directory of that name is taken as it is."""
    import difflib

    from rankvideo_cli.scoring.tiny import TINY_MODEL_NAME

    if model == TINY_MODEL_NAME or Path(model).expanduser().exists():
        return
    if difflib.get_close_matches(model.lower(), [TINY_MODEL_NAME], n=1, cutoff=0.8):
        raise UsageError(f"unknown model {model!r}: did you mean {TINY_MODEL_NAME!r}?")


NOT_LOADED = "not loaded: every pair was in the score store"


class DeferredScorer:
    """The scorer `options.load()` gives, loaded on first use (see the module docstring)."""

    def __init__(self, options: ScorerOptions) -> None:
        self.options = options
        self._scorer: Qwen3VLScorer | None = None
        self._predicted: dict[str, str] | None = None

    @property
    def loaded(self) -> bool:
        return self._scorer is not None

    def fingerprint(self) -> dict[str, str]:
        if self._scorer is not None:
            return self._scorer.fingerprint()
        if self._predicted is None:
            self._predicted = self.options.predicted_fingerprint()
            if self._predicted is None:  # cannot be known without loading
                return self.scorer().fingerprint()
        return dict(self._predicted)

    def scorer(self) -> Qwen3VLScorer:
        """The loaded scorer (loading it now if need be)."""
        if self._scorer is None:
            scorer = self.options.load()
            if self._predicted is not None and scorer.fingerprint() != self._predicted:
                raise ModelLoadError(
                    f"{self.options.model}: the loaded model's fingerprint {scorer.fingerprint()} differs from the "
                    f"one read before loading {self._predicted}; nothing was scored (the score store would mix "
                    "two models); please report this"
                )
            self._scorer = scorer
        return self._scorer

    def score_video(self, queries: list[str], video: SampledVideo) -> list[PairScore]:
        return self.scorer().score_video(queries, video)

    def describe(self) -> dict[str, Any]:
        """For the manifest; never loads anything itself."""
        if self._scorer is not None:
            return self._scorer.describe()
        if self._predicted is None:
            return {"model": self.options.model, "batch_size": NOT_LOADED}
        from rankvideo_cli.scoring.loading import resolve_device

        return {**self._predicted, "device": str(resolve_device(self.options.device)), "batch_size": NOT_LOADED}
