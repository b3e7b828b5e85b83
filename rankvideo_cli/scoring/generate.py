"""The model's full answer (its reasoning) for (query, video) pairs: the reference's `generate_batch`.

RankVideo is a reasoning reranker; a researcher looking at a surprising score wants to read why. The answer is
generated from exactly the scoring inputs: the same frames, the same prompt ids (`scorer.prompt_batch`: the
inference prompt, or with `--prompt training` the training prompt, whose answer begins after `<answer>`) and
one vision-tower pass per video shared by every query of the video, by its score too (`explain_video`).

Greedy decoding by default, so the same inputs give the same text. The reference leaves vLLM's defaults
(`SamplingParams(max_tokens=...)`, which sample with the checkpoint's generation settings); `GenerationSettings`
with a temperature samples instead, reproducibly under a seed. Generation stops at `<|im_end|>` (and the
checkpoint's own end-of-sequence ids) or after `max_new_tokens`; the text is decoded without special tokens,
as vLLM returns it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from rankvideo_cli.errors import UsageError
from rankvideo_cli.scoring.prompt import VideoInputs

if TYPE_CHECKING:
    from rankvideo_cli.scoring.base import PairScore
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
    from rankvideo_cli.videos.frames import SampledVideo

END_OF_TURN = "<|im_end|>"
STOPPED = "stop"  # the model ended its answer
LENGTH = "length"  # cut at max_new_tokens


@dataclass(frozen=True)
class GenerationSettings:
    """How to choose each token: greedy (the default: `temperature=None`), or sampled at `temperature` with
    optional `top_p` / `top_k`, from `seed` (the same seed gives the same text on the same machine)."""

    max_new_tokens: int = 512
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise UsageError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature is not None and not self.temperature > 0:
            raise UsageError(f"temperature must be above 0 (leave it out for greedy decoding), got {self.temperature}")
        if self.temperature is None and (self.top_p is not None or self.top_k is not None or self.seed is not None):
            raise UsageError("top_p, top_k and seed apply to sampling: give a temperature too")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise UsageError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k is not None and self.top_k < 1:
            raise UsageError(f"top_k must be at least 1, got {self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature is None

    def describe(self) -> dict[str, Any]:
        return {"greedy": self.greedy, **{key: value for key, value in asdict(self).items() if value is not None}}


@dataclass(frozen=True)
class Generation:
    text: str
    tokens: int  # generated tokens, the end-of-turn token included when the model stopped
    finish_reason: str  # STOPPED or LENGTH


def stop_token_ids(scorer: Qwen3VLScorer) -> list[int]:
    """`<|im_end|>` and the checkpoint's own end-of-sequence ids."""
    tokenizer = scorer.processor.tokenizer
    ids = [tokenizer.convert_tokens_to_ids(END_OF_TURN)]
    configured = getattr(scorer.model.generation_config, "eos_token_id", None)
    for extra in configured if isinstance(configured, list) else [configured]:
        if extra is not None and extra not in ids:
            ids.append(int(extra))
    return ids


def generate_for_video(
    scorer: Qwen3VLScorer,
    queries: list[str],
    video: SampledVideo,
    settings: GenerationSettings,
    *,
    video_inputs: VideoInputs | None = None,
    features: Any = None,
) -> list[Generation]:
    """The answer to every query about one video, `scorer.batch_size` prompts per `generate` call, the
    vision-tower pass done once (or given, when the caller scored the same video with it)."""
    if not queries:
        return []
    with torch.inference_mode():
        if video_inputs is None:
            video_inputs = scorer.encode(video)
        if features is None:
            features = scorer.vision_features(video_inputs)
        answers: list[Generation] = []
        for start in range(0, len(queries), scorer.batch_size):
            answers += _generate_chunk(
                scorer, queries[start : start + scorer.batch_size], video_inputs, features, settings
            )
    return answers


def explain_video(
    scorer: Qwen3VLScorer, queries: list[str], video: SampledVideo, settings: GenerationSettings
) -> list[tuple[PairScore, Generation]]:
    """Score and answer every query about one video, from one processor pass and one vision-tower pass."""
    with torch.inference_mode():
        video_inputs = scorer.encode(video)
        features = scorer.vision_features(video_inputs)
        scores = scorer.score_encoded(queries, video_inputs, features)
        answers = generate_for_video(scorer, queries, video, settings, video_inputs=video_inputs, features=features)
    return list(zip(scores, answers, strict=True))


def _generate_chunk(
    scorer: Qwen3VLScorer, queries: list[str], video_inputs: VideoInputs, features: Any, settings: GenerationSettings
) -> list[Generation]:
    batch = scorer.prompt_batch(queries, video_inputs)
    rows = batch.input_ids.shape[0]
    stops = stop_token_ids(scorer)
    tokenizer = scorer.processor.tokenizer
    options: dict[str, Any] = {"do_sample": not settings.greedy}
    if settings.greedy:  # the checkpoint's sampling defaults must not leak into a greedy run
        options.update(temperature=None, top_p=None, top_k=None)
    else:
        options.update(temperature=settings.temperature, top_p=settings.top_p, top_k=settings.top_k)
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
    output = scorer.model.generate(
        input_ids=batch.input_ids.to(scorer.device),
        attention_mask=batch.attention_mask.to(scorer.device),
        mm_token_type_ids=batch.mm_token_type_ids.to(scorer.device),
        video_grid_thw=video_inputs.video_grid_thw.repeat(rows, 1).to(scorer.device),
        mm_encoder_outputs={"video": scorer.repeat_features(features, rows)},
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=stops,
        pad_token_id=tokenizer.pad_token_id,
        **options,
    )
    answers = []
    for generated in output[:, batch.input_ids.shape[1] :].tolist():
        stop_at = next((position for position, token in enumerate(generated) if token in stops), None)
        kept = generated if stop_at is None else generated[: stop_at + 1]
        answers.append(
            Generation(
                text=tokenizer.decode(kept, skip_special_tokens=True),
                tokens=len(kept),
                finish_reason=LENGTH if stop_at is None else STOPPED,
            )
        )
    return answers
