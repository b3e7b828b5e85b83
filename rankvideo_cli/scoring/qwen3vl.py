"""RankVideo's score with a Qwen3-VL model: log P(yes) - log P(no) at the answer position (REFERENCE.md §5).

Per video, the processor's video part and the vision tower run once; the B prompts of a batch then reuse
the vision tower's output (`mm_encoder_outputs`), are padded at their end into one forward, and only the last
position goes through the LM head (`logits_to_keep=1`).

With `prompt="training"` (experimental) the prompt and the score are the training code's (`training_prompt`),
and by default the video's prefix goes through the language model once, every query's suffix packed against it
(`prefix_cache`); `prefix_cache=False` scores each pair in one full pass as above.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from rankvideo_cli.options import OptionError, at_least
from rankvideo_cli.scoring.answers import SCORE_MODES, training_scores
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
    PromptBatch,
    VideoInputs,
    encode_video,
)
from rankvideo_cli.scoring.rerankers import select_reranker
from rankvideo_cli.scoring.training_prompt import (
    split_training_prompts,
)
from rankvideo_cli.videos.frames import SampledVideo

if TYPE_CHECKING:
    from rankvideo_cli.scoring.hf import LoadedModel

logger = logging.getLogger(__name__)


class Qwen3VLScorer:
    """Scores (query, video) pairs with a loaded Qwen3-VL model; implements the `Scorer` protocol. The prompt, the
    yes/no ids and the score rule are the reranker's (`rankvideo_cli.scoring.rerankers`); the engine is shared."""

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        model_id: str = "unknown",
        revision: str = "unknown",
        options: ScorerOptions = ScorerOptions(),
    ) -> None:
        """`options`: which reranker and how to score (score mode, batch size, attention implementation, prompt,
        prefix cache, instruction); its model fields are the loader's, who passes `model_id` and `revision`."""
        score_mode, batch_size, prompt = options.score_mode, options.batch_size, options.prompt
        attn_implementation, prefix_cache = options.attn_implementation, options.prefix_cache
        if score_mode not in SCORE_MODES:
            raise OptionError("score_mode", f"must be one of {', '.join(SCORE_MODES)}, got {score_mode!r}")
        at_least("batch_size", batch_size)
        # the loader names the reranker in `options`; else the model's own id chooses, as for a hub id
        self.reranker = select_reranker(model_id, options.reranker).reranker
        self.reranker.check(options)
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
            model, self.device, self.dtype, prefix_cache=self.prefix_cache, sampling=self.reranker.sampling
        )
        # the video processor's arithmetic runs where the model is when that is a GPU
        self.preprocess_device: torch.device | None = self.device if self.device.type == "cuda" else None
        self.recipe = self.reranker.build_recipe(processor, options)
        self.recipe.check_template(model_id)
        self._prompt_hash = self.recipe.prompt_hash()
        self.oom_halvings = 0

    @property
    def yes_ids(self) -> list[int]:
        return self.recipe.yes_ids

    @property
    def no_ids(self) -> list[int]:
        return self.recipe.no_ids

    @classmethod
    def from_loaded(
        cls,
        loaded: LoadedModel,
        *,
        score_mode: str = "full",
        batch_size: int | None = None,
        prompt: str = INFERENCE_PROMPT,
        prefix_cache: bool = True,
        reranker: str | None = None,
        instruction: str | None = None,
    ) -> Qwen3VLScorer:
        """`reranker` None: chosen by the model's id, as `ScorerOptions.selection` chooses."""
        options = ScorerOptions(
            model=loaded.model_id,
            score_mode=score_mode,
            batch_size=batch_size,
            attn_implementation=loaded.attn_implementation,
            prompt=prompt,
            prefix_cache=prefix_cache,
            reranker=reranker,
            instruction=instruction,
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
            video_inputs = self.encode(video)
            return self.score_encoded(queries, video_inputs, self.vision_features(video_inputs))

    def encode(self, video: SampledVideo) -> VideoInputs:
        """The processor's video part for one video, with the reranker's processor settings."""
        return encode_video(
            self.processor, video, device=self.preprocess_device, options=self.recipe.video_processor_options()
        )

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
            extra=self.recipe.fingerprint_fields(),
        )

    def describe(self) -> dict[str, str]:
        """The fingerprint plus what may shift bf16 scores slightly without being part of the cache key."""
        import transformers

        described = {
            **self.fingerprint(),
            **self.recipe.describe(),
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

    def answer_scores(self, batch: PromptBatch, video_inputs: VideoInputs, features: Any) -> list[PairScore]:
        """The reranker's scores from each prompt's last position, reusing `features` for every row: the backbone
        runs once per batch on the rows padded at their end (no attention mask: see `PromptBatch.right_padded`),
        and the reranker's head reads each row's last token only."""
        rows = batch.input_ids.shape[0]
        repeated = self.repeat_features(features, rows)
        input_ids, mm_token_type_ids, lengths = batch.right_padded()
        with torch.inference_mode():
            output = self.model.model(
                input_ids=input_ids.to(self.device),
                mm_token_type_ids=mm_token_type_ids.to(self.device),
                video_grid_thw=video_inputs.video_grid_thw.repeat(rows, 1).to(self.device),
                mm_encoder_outputs={"video": repeated},
                use_cache=False,
            )
            last = (lengths - 1).to(self.device)
            # each row's last position, as a (B, 1, D) tensor: what `logits_to_keep=1` kept of a left-padded row
            hidden = output[0][torch.arange(rows, device=self.device), last].unsqueeze(1)
            return self.recipe.scores(hidden, self.model.lm_head)

    def prompt_batch(self, queries: list[str], video_inputs: VideoInputs) -> PromptBatch:
        """The reranker's whole prompts, left-padded (the full pass, and `explain`)."""
        return self.recipe.prompt_batch(queries, video_inputs)

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

    def _score_chunk(
        self, queries: list[str], video_inputs: VideoInputs, features: Any, prefix: CachedPrefix | None = None
    ) -> list[PairScore]:
        if prefix is not None:
            suffixes = split_training_prompts(self.processor, queries, video_inputs).suffix_ids
            logprobs = suffix_logprobs(self.model, suffixes, prefix, self.attn_implementation, self.device)
            return training_scores(logprobs, self.yes_ids[0], self.no_ids[0])
        batch = self.prompt_batch(queries, video_inputs)
        return self.answer_scores(batch, video_inputs, features)
