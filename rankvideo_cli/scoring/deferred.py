"""`DeferredScorer`: the scorer that loads its model only when there is a video to score.

A rerun whose pairs are all in the score store (a finished job run again, a SLURM array task requeued after it
wrote its last score) needs the model's fingerprint, to find its scores, and nothing else: loading 17 GB of
weights onto a GPU to write a file is minutes of a GPU node for nothing. `DeferredScorer` answers `fingerprint`
from the model's files alone, without torch (`loading.predict_fingerprint`), and loads the weights on the first
`score_video`. The loaded scorer's fingerprint must equal the predicted one, or nothing is scored (the store
would mix two models). Where the fingerprint cannot be known beforehand (a hub id that may update online), the
model loads at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rankvideo_cli.errors import ModelLoadError
from rankvideo_cli.scoring.loading import load_scorer, predict_fingerprint, resolve_device_name
from rankvideo_cli.scoring.options import ScorerOptions

if TYPE_CHECKING:
    from rankvideo_cli.scoring.base import PairScore, Scorer
    from rankvideo_cli.videos.frames import SampledVideo


NOT_LOADED = "not loaded: every pair was in the score store"


class DeferredScorer:
    """The scorer `load_scorer(options)` gives, loaded on first use (see the module docstring)."""

    def __init__(self, options: ScorerOptions) -> None:
        self.options = options
        self._scorer: Scorer | None = None
        self._predicted: dict[str, str] | None = None

    @property
    def loaded(self) -> bool:
        return self._scorer is not None

    def fingerprint(self) -> dict[str, str]:
        if self._scorer is not None:
            return self._scorer.fingerprint()
        if self._predicted is None:
            self._predicted = predict_fingerprint(self.options)
            if self._predicted is None:  # cannot be known without loading
                return self.scorer().fingerprint()
        return dict(self._predicted)

    def scorer(self) -> Scorer:
        """The loaded scorer (loading it now if need be)."""
        if self._scorer is None:
            scorer = load_scorer(self.options)
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
            described = getattr(self._scorer, "describe", None)
            return described() if callable(described) else self._scorer.fingerprint()
        if self._predicted is None:
            return {"model": self.options.model, "batch_size": NOT_LOADED}
        return {**self._predicted, "device": resolve_device_name(self.options.device), "batch_size": NOT_LOADED}
