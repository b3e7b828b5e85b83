"""RankVideo's score with a Qwen3-VL model: log P(yes) - log P(no) at the answer position (REFERENCE.md §5).

Per video, the processor's video part and the vision tower run once; the B prompts of a batch then reuse
the vision tower's output (`mm_encoder_outputs`), are left-padded into one forward, and only the last
position goes through the LM head (`logits_to_keep=1`).

With `prompt="training"` (experimental) the prompt and the score are the training code's (`training_prompt`),
and by default the video's prefix goes through the language model once, every query's suffix packed against it
(`prefix_cache`); `prefix_cache=False` scores each pair in one full pass as above.
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from rankvideo_cli.options import OptionError, at_least
from rankvideo_cli.scoring.base import (
    INFERENCE_PROMPT,
    TRAINING_PROMPT,
    PairScore,
    check_prompt_options,
    scorer_fingerprint,
)
from rankvideo_cli.scoring.memory import default_batch_size, is_out_of_memory, release_accelerator_memory
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.scoring.prefix_cache import (
    CachedPrefix,
    compute_prefix,
    suffix_logprobs,
)
from rankvideo_cli.scoring.prompt import (
    PROBE_QUERY,
    SYSTEM_PROMPT,
    USER_PROMPT,
    FidelityError,
    PromptBatch,
    VideoInputs,
    build_prompt_text,
    encode_video,
    tokenize_prompts,
)
from rankvideo_cli.scoring.training_prompt import (
    TRAINING_SYSTEM_PROMPT,
    TRAINING_USER_PROMPT,
    build_training_prompt_text,
    prompt_hash,
    rendered_probe,
    split_training_prompts,
    tokenize_training_prompts,
    training_answer_ids,
)
from rankvideo_cli.videos.frames import SampledVideo

if TYPE_CHECKING:
    from rankvideo_cli.scoring.hf import LoadedModel

logger = logging.getLogger(__name__)

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


class Qwen3VLScorer:
    """Scores (query, video) pairs with a loaded Qwen3-VL model; implements the `Scorer` protocol."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str = "unknown",
        revision: str = "unknown",
        options: ScorerOptions = ScorerOptions(),
    ) -> None:
        """`options`: how to score (score mode, batch size, attention implementation, prompt, prefix cache); its
        model fields are the loader's, who passes `model_id` and `revision`."""
        score_mode, batch_size, prompt = options.score_mode, options.batch_size, options.prompt
        attn_implementation, prefix_cache = options.attn_implementation, options.prefix_cache
        if score_mode not in SCORE_MODES:
            raise OptionError("score_mode", f"must be one of {', '.join(SCORE_MODES)}, got {score_mode!r}")
        at_least("batch_size", batch_size)
        self.attn_implementation = attn_implementation or str(
            getattr(model.config, "_attn_implementation", None) or "sdpa"
        )
        # the rules `loading` applies before the weights load, here for a scorer built around a loaded model
        check_prompt_options(prompt, score_mode, self.attn_implementation, prefix_cache)
        self.prompt = prompt
        # the prefix cache is the training prompt's (the inference prompt's video comes after the query)
        self.prefix_cache = prefix_cache and prompt == TRAINING_PROMPT
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.revision = revision
        self.score_mode = score_mode
        self.device = next(model.parameters()).device
        self.dtype = next(model.parameters()).dtype
        # None: from the GPU's free memory once the weights are in (scoring.memory), 8 on the CPU
        self.batch_size = batch_size or default_batch_size(
            model, self.device, self.dtype, prefix_cache=self.prefix_cache
        )
        # the video processor's arithmetic runs where the model is when that is a GPU
        self.preprocess_device: torch.device | None = self.device if self.device.type == "cuda" else None
        if prompt == TRAINING_PROMPT:
            yes_id, no_id = training_answer_ids(processor.tokenizer)
            self.yes_ids, self.no_ids = [yes_id], [no_id]
        else:
            self.yes_ids, self.no_ids = answer_token_ids(processor.tokenizer)
        rendered = rendered_probe(processor, prompt)
        check_prompt_text(rendered, model_id, prompt)
        expected = build_training_prompt_text if prompt == TRAINING_PROMPT else build_prompt_text
        if rendered != expected(PROBE_QUERY):
            # The reference renders with the model's own template too, so it is used as it is; but it is
            # not the Qwen3-VL Instruct template RankVideo was trained with (REFERENCE.md section 4).
            print(
                f"warning: {model_id}'s chat template renders the RankVideo prompt differently from "
                "Qwen3-VL-Instruct's; using the model's own template",
                file=sys.stderr,
            )
        self._prompt_hash = prompt_hash(processor, prompt, rendered)
        self.oom_halvings = 0

    @classmethod
    def from_loaded(
        cls,
        loaded: LoadedModel,
        *,
        score_mode: str = "full",
        batch_size: int | None = None,
        prompt: str = INFERENCE_PROMPT,
        prefix_cache: bool = True,
    ) -> Qwen3VLScorer:
        options = ScorerOptions(
            score_mode=score_mode,
            batch_size=batch_size,
            attn_implementation=loaded.attn_implementation,
            prompt=prompt,
            prefix_cache=prefix_cache,
        )
        return cls(loaded.model, loaded.processor, model_id=loaded.model_id, revision=loaded.revision, options=options)

    # ---------------------------------------------------------------------------------------------
    # Public API
    # ---------------------------------------------------------------------------------------------

    def score_video(self, queries: list[str], video: SampledVideo) -> list[PairScore]:
        """Score every query against one video: one processor pass and one vision-tower pass for the video,
        then `batch_size` prompts per forward (halved on out-of-memory, no pair lost)."""
        if not queries:
            return []
        with torch.inference_mode():
            video_inputs = encode_video(self.processor, video, device=self.preprocess_device)
            return self.score_encoded(queries, video_inputs, self.vision_features(video_inputs))

    def score_encoded(self, queries: list[str], video_inputs: VideoInputs, features: Any) -> list[PairScore]:
        """`score_video` for a video already through the processor and the vision tower."""
        distinct = list(dict.fromkeys(queries))
        scored: dict[str, PairScore] = {}
        start = 0
        with torch.inference_mode():
            # the training prompt's system turn and video, once for all the video's queries (None otherwise)
            prefix = self.video_prefix(distinct, video_inputs, features) if self.prefix_cache else None
            while start < len(distinct):
                chunk = distinct[start : start + self.batch_size]
                try:
                    chunk_scores = self._score_chunk(chunk, video_inputs, features, prefix)
                except Exception as error:
                    if not is_out_of_memory(error) or len(chunk) == 1:
                        raise
                    release_accelerator_memory()
                    self.batch_size = max(1, len(chunk) // 2)
                    self.oom_halvings += 1
                    logger.warning(
                        "out of memory with %d pairs per forward; retrying with %d",
                        len(chunk),
                        self.batch_size,
                    )
                    continue
                scored.update(zip(chunk, chunk_scores, strict=True))
                start += len(chunk)
        return [scored[query] for query in queries]

    def score_pairs(self, pairs: Sequence[tuple[str, SampledVideo]]) -> list[PairScore]:
        """Score (query, video) pairs in any order; pairs sharing a `SampledVideo` share one vision pass."""
        groups: dict[int, tuple[SampledVideo, list[int]]] = {}
        for position, (_query, video) in enumerate(pairs):
            groups.setdefault(id(video), (video, []))[1].append(position)
        results: list[PairScore | None] = [None] * len(pairs)
        for video, positions in groups.values():
            scores = self.score_video([pairs[p][0] for p in positions], video)
            for position, score in zip(positions, scores, strict=True):
                results[position] = score
        return [score for score in results if score is not None]

    def fingerprint(self) -> dict[str, str]:
        """Everything that changes the scores for the same frames: the cache key and manifest entry."""
        return scorer_fingerprint(
            model_id=self.model_id,
            revision=self.revision,
            dtype=str(self.dtype),
            attn_implementation=self.attn_implementation,
            score_mode=self.score_mode,
            prompt_hash=self._prompt_hash,
            prompt_format=self.prompt,
        )

    def describe(self) -> dict[str, str]:
        """The fingerprint plus what may shift bf16 scores slightly without being part of the cache key."""
        import transformers

        described = {
            **self.fingerprint(),
            "device": str(self.device),
            "batch_size": str(self.batch_size),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        }
        if self.prompt == TRAINING_PROMPT:
            # like the batch size, it shifts bf16 scores slightly without being part of the key
            described["prefix_cache"] = "on" if self.prefix_cache else "off"
        return described

    # ---------------------------------------------------------------------------------------------
    # Steps (public so that tests and benchmarks can drive and time them)
    # ---------------------------------------------------------------------------------------------

    def vision_features(self, video_inputs: VideoInputs) -> Any:
        """One vision-tower pass: merged video embeddings and DeepStack features for one video."""
        with torch.inference_mode():
            return self.model.model.get_video_features(
                video_inputs.pixel_values_videos.to(self.device),
                video_inputs.video_grid_thw.to(self.device),
            )

    @staticmethod
    def repeat_features(features: Any, rows: int) -> Any:
        """One video's vision-tower output as the model takes it for `rows` prompts about that video (the
        tensors are shared, not copied)."""
        from transformers.models.qwen3_vl.modeling_qwen3_vl import BaseModelOutputWithDeepstackFeatures

        # transformers types both fields as tensors, yet get_video_features stores tuples, one tensor per video
        # (torch.split), and the model reads them so
        pooler_output = tuple(features.pooler_output) * rows
        deepstack = [tuple(layer) * rows for layer in features.deepstack_features]
        return BaseModelOutputWithDeepstackFeatures(
            pooler_output=pooler_output,  # type: ignore[arg-type]  # typed Tensor, holds a tuple per video
            deepstack_features=deepstack,  # type: ignore[arg-type]  # typed list[Tensor], holds tuples per video
        )

    def answer_logprobs(self, batch: PromptBatch, video_inputs: VideoInputs, features: Any) -> torch.Tensor:
        """(B, V) float32 log-softmax at the last prompt position, reusing `features` for every row."""
        rows = batch.input_ids.shape[0]
        repeated = self.repeat_features(features, rows)
        with torch.inference_mode():
            output = self.model(
                input_ids=batch.input_ids.to(self.device),
                attention_mask=batch.attention_mask.to(self.device),
                mm_token_type_ids=batch.mm_token_type_ids.to(self.device),
                video_grid_thw=video_inputs.video_grid_thw.repeat(rows, 1).to(self.device),
                mm_encoder_outputs={"video": repeated},
                logits_to_keep=1,
                use_cache=False,
            )
            return torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)

    def prompt_batch(self, queries: list[str], video_inputs: VideoInputs) -> PromptBatch:
        """The whole prompts of this scorer's prompt format, left-padded (the full pass, and `explain`)."""
        if self.prompt == TRAINING_PROMPT:
            return tokenize_training_prompts(self.processor, queries, video_inputs)
        return tokenize_prompts(self.processor, queries, video_inputs)

    def video_prefix(self, queries: list[str], video_inputs: VideoInputs, features: Any) -> CachedPrefix:
        """The training prompt's prefix (system turn and video) through the language model, once per video."""
        split = split_training_prompts(self.processor, queries[:1], video_inputs)
        return compute_prefix(
            self.model,
            split.prefix_ids,
            split.prefix_mm_token_type_ids,
            video_inputs.video_grid_thw,
            features,
            self.device,
        )

    def scores_from_logprobs(self, logprobs: torch.Tensor) -> list[PairScore]:
        if self.prompt == TRAINING_PROMPT:
            return training_scores(logprobs, self.yes_ids[0], self.no_ids[0])
        if self.score_mode == "reference":
            return reference_scores(logprobs, self.yes_ids, self.no_ids)
        return full_scores(logprobs, self.yes_ids, self.no_ids)

    def _score_chunk(
        self, queries: list[str], video_inputs: VideoInputs, features: Any, prefix: CachedPrefix | None = None
    ) -> list[PairScore]:
        if prefix is not None:
            suffixes = split_training_prompts(self.processor, queries, video_inputs).suffix_ids
            logprobs = suffix_logprobs(self.model, suffixes, prefix, self.attn_implementation, self.device)
            return self.scores_from_logprobs(logprobs)
        batch = self.prompt_batch(queries, video_inputs)
        return self.scores_from_logprobs(self.answer_logprobs(batch, video_inputs, features))
