"""How to load a scorer, as plain data (`ScorerOptions`): what `rerank` hands to each device worker (a separate
process) so that every worker loads the very model the user asked for, and the one spelling of the model's options
for the command line, the PyTerrier reranker and `VLMReranker`. Importing this module imports no torch;
`loading.load_scorer(options)` loads, `deferred.DeferredScorer(options)` loads on first use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rankvideo_cli.errors import UsageError
from rankvideo_cli.options import at_least
from rankvideo_cli.scoring.base import INFERENCE_PROMPT, check_prompt_options
from rankvideo_cli.scoring.rerankers import Selection, select_reranker
from rankvideo_cli.videos.config import SamplingConfig

DEFAULT_MODEL = "hltcoe/RankVideo"


@dataclass(frozen=True)
class ScorerOptions:
    model: str = DEFAULT_MODEL
    revision: str | None = None
    cache_dir: str | None = None  # the Hugging Face cache directory
    dtype: str | None = None
    device: str | None = None
    attn_implementation: str | None = None
    score_mode: str = "full"
    batch_size: int | None = None
    prompt: str = INFERENCE_PROMPT  # or TRAINING_PROMPT (experimental: scoring.training_prompt)
    prefix_cache: bool = True  # the training prompt's per-video prefix reuse (off: one full pass per pair)
    reranker: str | None = None  # a name in `rankvideo_cli.scoring.rerankers` (None: chosen by the model's hub id)
    instruction: str | None = None  # for a reranker whose prompt has one (None: the reranker's own)

    def check(self) -> None:
        """Refuse options that cannot work, before anything loads (no torch)."""
        check_model_name(self.model)
        if self.revision is not None and is_named_model(self.model):
            raise UsageError(f"--revision applies to hub ids only, not to {self.model}")
        at_least("batch_size", self.batch_size)
        self.selection().reranker.check(self)
        check_prompt_options(self.prompt, self.score_mode, self.attn_implementation, self.prefix_cache)

    def selection(self) -> Selection:
        """The reranker that scores this model, and why (`rerankers.select_reranker`)."""
        return select_reranker(self.model, self.reranker)

    def sampling(self) -> SamplingConfig:
        """The frames this model is shown: its reranker's sampling."""
        return self.selection().reranker.sampling

    def on_device(self, device: str) -> ScorerOptions:
        return replace(self, device=device)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScorerOptions:
        return cls(**data)


def is_named_model(model: str) -> bool:
    """One of the models rankvideo names itself (`tiny-random`, whose files it builds; `fake-scorer`, which has
    none): never a hub id or a directory, whatever the file system holds."""
    from rankvideo_cli.scoring.fake import is_fake_model
    from rankvideo_cli.scoring.tiny import TINY_MODEL_NAME

    return model == TINY_MODEL_NAME or is_fake_model(model)


def check_model_name(model: str) -> None:
    """A near miss of `tiny-random` or `fake-scorer` (`tiny_random`, `fake-scorr`) is a typo, not a hub id to
    look up for half a minute: say so at once. An existing directory of that name is taken as it is."""
    import difflib

    from rankvideo_cli.scoring.fake import FAKE_MODEL_NAME, is_fake_model, parse_fake_model
    from rankvideo_cli.scoring.tiny import TINY_MODEL_NAME

    if is_fake_model(model):
        parse_fake_model(model)
        return
    if model == TINY_MODEL_NAME or Path(model).expanduser().exists():
        return
    near = difflib.get_close_matches(model.lower(), [TINY_MODEL_NAME, FAKE_MODEL_NAME], n=1, cutoff=0.8)
    if near:
        raise UsageError(f"unknown model {model!r}: did you mean {near[0]!r}?")
