"""RankVideo (hltcoe/RankVideo, a Qwen3-VL-8B-Instruct fine-tune), and the zero-shot base model with its prompt:
the reference's inference prompt (REFERENCE.md sections 1-5; `scoring.prompt`), or the authors' training prompt
(`--prompt training`, experimental; `scoring.training_prompt`). Every model that is not another reranker's is
scored this way, so its prompt, sampling and fingerprint are the ones rankvideo has always used: stores and
frame caches written before the registry keep answering."""

from __future__ import annotations

import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rankvideo_cli.scoring.rerankers.base import RecipeSettings, Reranker
from rankvideo_cli.videos.config import SamplingConfig

if TYPE_CHECKING:
    import torch

    from rankvideo_cli.scoring.base import PairScore
    from rankvideo_cli.scoring.prompt import PromptBatch, VideoInputs


class RankVideoRecipe:
    """The inference prompt's yes/no ids (every id decoding to yes / no) and log-sum-exp score, full or as vLLM
    served it to the reference (`score_mode`); or the training prompt and its single-id objective."""

    def __init__(self, processor: Any, settings: RecipeSettings) -> None:
        from rankvideo_cli.scoring.base import TRAINING_PROMPT
        from rankvideo_cli.scoring.training_prompt import rendered_probe

        self.processor = processor
        self.prompt = settings.prompt
        self.score_mode = settings.score_mode
        self.training = settings.prompt == TRAINING_PROMPT
        self.rendered = rendered_probe(processor, settings.prompt)

    @cached_property
    def _answer_ids(self) -> tuple[list[int], list[int]]:
        """Decoded from the whole vocabulary (a second): only when scoring, not for a fingerprint."""
        from rankvideo_cli.scoring.answers import answer_token_ids
        from rankvideo_cli.scoring.training_prompt import training_answer_ids

        if self.training:
            yes_id, no_id = training_answer_ids(self.processor.tokenizer)
            return [yes_id], [no_id]
        return answer_token_ids(self.processor.tokenizer)

    @property
    def yes_ids(self) -> list[int]:
        return self._answer_ids[0]

    @property
    def no_ids(self) -> list[int]:
        return self._answer_ids[1]

    def check_template(self, model_id: str) -> None:
        from rankvideo_cli.scoring.answers import check_prompt_text
        from rankvideo_cli.scoring.prompt import PROBE_QUERY, build_prompt_text
        from rankvideo_cli.scoring.training_prompt import build_training_prompt_text

        check_prompt_text(self.rendered, model_id, self.prompt)
        expected = build_training_prompt_text if self.training else build_prompt_text
        if self.rendered != expected(PROBE_QUERY):
            # The reference renders with the model's own template too, so it is used as it is; but it is not
            # the Qwen3-VL Instruct template RankVideo was trained with (REFERENCE.md section 4).
            print(
                f"warning: {model_id}'s chat template renders the RankVideo prompt differently from "
                "Qwen3-VL-Instruct's; using the model's own template",
                file=sys.stderr,
            )

    def prompt_hash(self) -> str:
        from rankvideo_cli.scoring.training_prompt import prompt_hash

        return prompt_hash(self.processor, self.prompt, self.rendered)

    def fingerprint_fields(self) -> dict[str, str]:
        # the training prompt's scores never answer for the inference prompt's (its `prompt` hash differs too)
        return {"prompt_format": self.prompt} if self.training else {}

    def video_processor_options(self) -> dict[str, Any]:
        # the checkpoint's processor settings apply, as they did to the reference: a checkpoint that would
        # resize the sampled frames is refused (`prompt.check_video_grid`)
        return {}

    def prompt_batch(self, queries: list[str], video_inputs: VideoInputs) -> PromptBatch:
        from rankvideo_cli.scoring.prompt import tokenize_prompts
        from rankvideo_cli.scoring.training_prompt import tokenize_training_prompts

        if self.training:
            return tokenize_training_prompts(self.processor, queries, video_inputs)
        return tokenize_prompts(self.processor, queries, video_inputs)

    def scores(self, hidden: torch.Tensor, lm_head: Any) -> list[PairScore]:
        """The LM head at the last position, as `logits_to_keep=1` applies it, then the log-softmax in float32."""
        import torch

        return self.from_logprobs(torch.log_softmax(lm_head(hidden)[:, -1, :].float(), dim=-1))

    def from_logprobs(self, logprobs: torch.Tensor) -> list[PairScore]:
        """The score from (B, V) float32 log-probabilities at the last prompt position."""
        from rankvideo_cli.scoring.answers import full_scores, reference_scores, training_scores

        if self.training:
            return training_scores(logprobs, self.yes_ids[0], self.no_ids[0])
        if self.score_mode == "reference":
            return reference_scores(logprobs, self.yes_ids, self.no_ids)
        return full_scores(logprobs, self.yes_ids, self.no_ids)

    def describe(self) -> dict[str, str]:
        return {}


RERANKER = Reranker(
    name="rankvideo",
    summary="RankVideo's reference prompt, frames and yes/no score (any other Qwen3-VL checkpoint: zero-shot)",
    hub_ids=("hltcoe/RankVideo",),
    sampling=SamplingConfig(),
    recipe=RankVideoRecipe,
    prompts=("inference", "training"),
    score_modes=("full", "reference"),
)
