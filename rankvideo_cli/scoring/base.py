"""What the pipeline needs from a scorer, and what a score is."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from rankvideo_cli.errors import PromptOptionError

if TYPE_CHECKING:
    from rankvideo_cli.videos.frames import SampledVideo


def p_yes_of(logit_delta: float) -> float:
    """p_yes = sigmoid(logit_delta), in the stable form (exp never overflows)."""
    if logit_delta >= 0:
        return 1.0 / (1.0 + math.exp(-logit_delta))
    return math.exp(logit_delta) / (1.0 + math.exp(logit_delta))


class PairScore(NamedTuple):
    """RankVideo's relevance score for one (query, video) pair (a named tuple: stores hold many)."""

    logit_delta: float  # logprob_yes - logprob_no: the ranking score
    p_yes: float  # sigmoid(logit_delta)
    logprob_yes: float  # logsumexp of log p over the yes-token ids
    logprob_no: float  # logsumexp of log p over the no-token ids

    @classmethod
    def from_logprobs(cls, logprob_yes: float, logprob_no: float) -> PairScore:
        delta = logprob_yes - logprob_no
        return cls(logit_delta=delta, p_yes=p_yes_of(delta), logprob_yes=logprob_yes, logprob_no=logprob_no)

    def to_dict(self) -> dict[str, float]:
        """The model card's field names (`logit_delta_yes_minus_no` is the card's name for `logit_delta`)."""
        return {
            "logit_delta_yes_minus_no": self.logit_delta,
            "logit_delta": self.logit_delta,
            "p_yes": self.p_yes,
            "logprob_yes": self.logprob_yes,
            "logprob_no": self.logprob_no,
        }


SCORER_VERSION = "qwen3vl-1"

# The prompt around the video: the reference's inference prompt (query first; the published results), or the
# authors' training prompt (video first; experimental, `scoring.training_prompt`).
INFERENCE_PROMPT = "inference"
TRAINING_PROMPT = "training"
PROMPT_FORMATS = (INFERENCE_PROMPT, TRAINING_PROMPT)
# The training prompt's prefix cache masks packed suffixes with an explicit 4D mask, which these take.
PREFIX_CACHE_ATTENTION = ("sdpa", "eager")


def check_prompt_options(
    prompt: str, score_mode: str, attn_implementation: str | None, prefix_cache: bool
) -> str | None:
    """Refuse a prompt option that cannot work (`PromptOptionError`), before anything loads and again in the
    scorer; return the attention implementation to load with (the prefix cache picks sdpa where the default
    could be flash attention)."""
    if prompt not in PROMPT_FORMATS:
        raise PromptOptionError(f"--prompt must be one of {', '.join(PROMPT_FORMATS)}, got {prompt!r}")
    if prompt != TRAINING_PROMPT:
        return attn_implementation
    if score_mode != "full":
        raise PromptOptionError(
            "--score-mode reference mimics the inference prompt's vLLM top-512 log-probs; the training prompt has "
            "one score (its training objective): leave --score-mode at full"
        )
    if not prefix_cache:
        return attn_implementation
    if attn_implementation is None:
        return "sdpa"
    if attn_implementation not in PREFIX_CACHE_ATTENTION:
        raise PromptOptionError(
            f"--prompt training's prefix cache needs --attn-implementation sdpa or eager (it masks packed "
            f"suffixes), not {attn_implementation}; or add --no-prefix-cache"
        )
    return attn_implementation


def scorer_fingerprint(
    *,
    model_id: str,
    revision: str,
    dtype: str,
    attn_implementation: str,
    score_mode: str,
    prompt_hash: str,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """What a Qwen3-VL scorer's scores depend on for the same frames (the store's namespace): built here by the
    loaded scorer and, before any weights load, by `loading.predict_fingerprint`, so the two cannot drift.

    `extra`: the reranker's own fields (`Recipe.fingerprint_fields`): RankVideo's training prompt adds
    `prompt_format`, Qwen3-VL-Reranker its name, instruction and window, so their scores never answer for another
    prompt's in a store or a merge; RankVideo's inference prompt adds nothing, so its fingerprint is as it always
    was and existing stores keep answering.
    """
    fingerprint = {
        "scorer": SCORER_VERSION,
        "model": model_id,
        "revision": revision,
        "dtype": dtype.removeprefix("torch."),
        "attn_implementation": attn_implementation,
        "score_mode": score_mode,
        "prompt": prompt_hash,
    }
    fingerprint.update(extra or {})
    return fingerprint


@runtime_checkable
class Scorer(Protocol):
    """Scores every query against one sampled video (so a real scorer can run the vision tower once)."""

    def score_video(self, queries: list[str], video: SampledVideo) -> list[PairScore]: ...

    def fingerprint(self) -> dict[str, str]:
        """Everything that changes the scores (model id, revision, dtype, prompt version...): cache key and manifest."""
        ...
