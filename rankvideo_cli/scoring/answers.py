"""The yes/no score rules of the rerankers that read the answer position: RankVideo's every-id-decoding-to-yes/no
log-sum-exp (REFERENCE.md section 5), in full or as vLLM served it to the reference, and the single-id rule of
RankVideo's training objective; and the check that a chat template renders RankVideo's prompt text."""

from __future__ import annotations

import contextlib
import math
import weakref
from collections.abc import Sequence
from typing import Any

import torch

from rankvideo_cli.scoring.base import INFERENCE_PROMPT, TRAINING_PROMPT, PairScore
from rankvideo_cli.scoring.prompt import PROBE_QUERY, SYSTEM_PROMPT, USER_PROMPT, FidelityError
from rankvideo_cli.scoring.training_prompt import TRAINING_SYSTEM_PROMPT, TRAINING_USER_PROMPT

SCORE_MODES = ("full", "reference")
# vLLM returned this many log-probs to the reference code (`SamplingParams(logprobs=512)`).
REFERENCE_TOP_LOGPROBS = 512


_ANSWER_IDS: weakref.WeakKeyDictionary[Any, tuple[list[int], list[int]]] = weakref.WeakKeyDictionary()


def answer_token_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The reference's yes / no ids: every id below `tokenizer.vocab_size` whose decoded text, stripped and
    lower-cased, is `yes` / `no` (added tokens such as <|im_end|> sit above vocab_size and never count).

    Decoding the whole vocabulary takes about a second: the result is remembered per tokenizer object.
    """
    try:
        cached = _ANSWER_IDS.get(tokenizer)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is not None:
        return list(cached[0]), list(cached[1])
    found = _decode_answer_ids(tokenizer)
    with contextlib.suppress(TypeError):
        _ANSWER_IDS[tokenizer] = found
    return list(found[0]), list(found[1])


def _decode_answer_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    size = int(tokenizer.vocab_size)
    ids = [[token_id] for token_id in range(size)]
    backend = getattr(tokenizer, "_tokenizer", None)
    if backend is not None and hasattr(backend, "decode_batch"):
        # the Rust tokenizer decodes the whole vocabulary in one call, 3-4x faster than `batch_decode`
        texts = backend.decode_batch(ids, skip_special_tokens=False)
        if getattr(tokenizer, "clean_up_tokenization_spaces", False):
            texts = [tokenizer.clean_up_tokenization(text) for text in texts]
    else:
        texts = tokenizer.batch_decode(ids)
    yes_ids = [token_id for token_id, text in enumerate(texts) if text.strip().lower() == "yes"]
    no_ids = [token_id for token_id, text in enumerate(texts) if text.strip().lower() == "no"]
    if not yes_ids or not no_ids:
        raise ValueError(f"the tokenizer has no yes/no tokens (yes {yes_ids}, no {no_ids})")
    return yes_ids, no_ids


def _logsumexp(values: Sequence[float]) -> float:
    """As the reference computes it (Python floats)."""
    peak = max(values)
    return peak + math.log(sum(math.exp(value - peak) for value in values))


def full_scores(logprobs: torch.Tensor, yes_ids: Sequence[int], no_ids: Sequence[int]) -> list[PairScore]:
    """Scores from (B, V) float32 log-probabilities over the full vocabulary."""
    yes = torch.logsumexp(logprobs[:, list(yes_ids)], dim=-1)
    no = torch.logsumexp(logprobs[:, list(no_ids)], dim=-1)
    return [PairScore.from_logprobs(float(y), float(n)) for y, n in zip(yes.tolist(), no.tolist(), strict=True)]


def reference_scores(
    logprobs: torch.Tensor, yes_ids: Sequence[int], no_ids: Sequence[int], top: int = REFERENCE_TOP_LOGPROBS
) -> list[PairScore]:
    """Scores as vLLM served them to the reference: only the `top` largest log-probs are visible; ids outside
    them are dropped, and when every yes or every no id is missing, all four fields are 0.0 (p_yes included,
    as the reference returns it).

    vLLM also returns the sampled token (greedy among the allowed yes/no ids), but that never changes the
    result: if it is outside the top `top`, so is every other answer id, and one side is missing anyway.
    """
    top_ids = logprobs.topk(min(top, logprobs.shape[-1]), dim=-1).indices
    scores = []
    for row in range(logprobs.shape[0]):
        visible = set(top_ids[row].tolist())
        row_logprobs = logprobs[row]
        yes_seen = [float(row_logprobs[i]) for i in yes_ids if i in visible]
        no_seen = [float(row_logprobs[i]) for i in no_ids if i in visible]
        if not yes_seen or not no_seen:
            scores.append(PairScore(logit_delta=0.0, p_yes=0.0, logprob_yes=0.0, logprob_no=0.0))
            continue
        scores.append(PairScore.from_logprobs(_logsumexp(yes_seen), _logsumexp(no_seen)))
    return scores


def training_scores(logprobs: torch.Tensor, yes_id: int, no_id: int) -> list[PairScore]:
    """The training objective's score from (B, V) float32 log-probabilities: `logprob_yes` and `logprob_no` are
    the log-probabilities of the single ids `encode("yes")[0]` and `encode("no")[0]`, so `logit_delta` equals
    the training code's `logit[yes] - logit[no]` (the log-softmax's normaliser cancels)."""
    yes = logprobs[:, yes_id].tolist()
    no = logprobs[:, no_id].tolist()
    return [PairScore.from_logprobs(float(y), float(n)) for y, n in zip(yes, no, strict=True)]


def check_prompt_text(rendered: str, model_id: str, prompt_format: str = INFERENCE_PROMPT) -> None:
    """The model's chat template must render the reference's system and user text exactly (another template
    around them only warns: the reference used the model's own template too)."""
    if prompt_format == TRAINING_PROMPT:
        texts = (("system", TRAINING_SYSTEM_PROMPT), ("user", TRAINING_USER_PROMPT.format(query=PROBE_QUERY)))
    else:
        texts = (("system", SYSTEM_PROMPT), ("user", USER_PROMPT.format(query=PROBE_QUERY)))
    for name, text in texts:
        if text not in rendered:
            raise FidelityError(
                f"{model_id}'s chat template does not render the reference's {name} text as it is "
                f"({text[:60]!r}...): RankVideo would not see the prompt it was trained on"
            )
