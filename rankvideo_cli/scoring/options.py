"""How to load a scorer, as plain data: what `rerank` hands to each device worker (a separate process) so that
every worker loads the very model the user asked for. Importing this module imports no torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rankvideo_cli.scoring.deferred import DeferredScorer
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer


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

    def load(self) -> Qwen3VLScorer:
        from rankvideo_cli.scoring.loading import load_scorer

        return load_scorer(
            self.model,
            revision=self.revision,
            cache_dir=Path(self.cache_dir) if self.cache_dir is not None else None,
            dtype=self.dtype,
            device=self.device,
            attn_implementation=self.attn_implementation,
            score_mode=self.score_mode,
            batch_size=self.batch_size,
        )

    def predicted_fingerprint(self) -> dict[str, str] | None:
        """`load().fingerprint()` without loading the weights, or None when that cannot be known beforehand."""
        from rankvideo_cli.scoring.loading import predict_fingerprint

        return predict_fingerprint(self)

    def deferred(self) -> DeferredScorer:
        """A scorer that loads the model only when a video is to be scored (`scoring.deferred`)."""
        from rankvideo_cli.scoring.deferred import DeferredScorer

        return DeferredScorer(self)

    def on_device(self, device: str) -> ScorerOptions:
        return replace(self, device=device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScorerOptions:
        return cls(**data)
