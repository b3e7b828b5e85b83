"""Qwen3-VL-Reranker (Qwen/Qwen3-VL-Reranker-2B and -8B), as its reference scores a video file:
`Qwen3VLReranker.process({"query": {"text": q}, "documents": [{"video": path}]})` in QwenLM/Qwen3-VL-Embedding at
8ce3aab (`src/models/qwen3_vl_reranker.py`; REFERENCE.md section 11), with one deliberate difference, for long
videos (below).

- Prompt: the system text `SYSTEM_PROMPT`; a user turn of the text items `<Instruct>: {instruction}`,
  `<Query>:`, the query, `\\n<Document>:`, then the video; the model's chat template with the generation prompt.
- Frames: a file gets `fps=1, max_frames=64` and no pixel keys, so qwen-vl-utils 0.0.14's defaults apply (per
  frame at least 128 tokens of 32x32 and at most `max(min(768 x 32 x 32, total / n x 2), 1.05 x min)` with
  `total = 128000 x 32 x 32 x 0.9`).
- Score: `sigmoid(h_last . (W_lm[yes] - W_lm[no]))` with the single ids `get_vocab()["yes"]` and `["no"]`, the
  difference taken in the weights' dtype as the reference takes it; `logit_delta` is that logit, `p_yes` the
  reference's score, `logprob_yes` / `logprob_no` the log-softmax of the two ids over the whole vocabulary.
- Window: a prompt longer than `MAX_LENGTH` + 5 ids is cut by the reference's own rule (`reference_cut`): the
  last 5 ids stay; of the rest every special id stays and the text ids only while `MAX_LENGTH` minus the special
  ids allows, first come first kept.

Long videos, where rankvideo departs from the reference on purpose: the video pads are special ids, so a 720p
file past about 28 s brings more of them than the window holds and the reference's cut keeps special ids only:
the instruction, the query and the timestamps are gone and every query gets the same score. The reference has a
video budget of its own, `MAX_TOTAL_PIXELS` (7,680 tokens), which it applies to frame lists and drops for files;
rankvideo applies it to files too wherever the reference's sampling would bring more video tokens than that
(`SamplingConfig.fit_total_pixels`): the same frames and timestamps, smaller. Such videos are counted as fitted in
the summary and the manifest. Up to 20 sampled frames (20 s) the budget never binds, so there rankvideo and the
reference agree bit for bit; it differs from the reference's `process()` for videos of more than 7,680 video
tokens, which are all those the reference would score without their query and a band just below them (720p
from 22 to 28 s). A prompt that a very long query or instruction still pushes past the window is cut by the
reference's rule, counted, and named on stderr.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from rankvideo_cli.scoring.rerankers.base import RecipeSettings, Reranker
from rankvideo_cli.videos.config import SamplingConfig

if TYPE_CHECKING:
    import torch

    from rankvideo_cli.scoring.base import PairScore
    from rankvideo_cli.scoring.prompt import PromptBatch, VideoInputs

logger = logging.getLogger(__name__)

SYSTEM_PROMPT = (
    "Judge whether the Document meets the requirements based on the Query and the Instruct provided. "
    'Note that the answer can only be "yes" or "no".'
)
DEFAULT_INSTRUCTION = "Given a search query, retrieve relevant candidates that answer the query."
MAX_LENGTH = 10240
KEPT_TAIL = 5  # the reference cuts `input_ids[:-5]` and puts these back
FRAME_MAX_PIXELS = 768 * 32 * 32
MAX_TOTAL_PIXELS = 10 * FRAME_MAX_PIXELS  # the reference's video budget: 7,680 tokens of 32x32
# qwen-vl-utils 0.0.14's defaults for an element without pixel keys (VIDEO_MIN_TOKEN_NUM, MODEL_SEQ_LEN)
QWEN_VL_UTILS_MIN_PIXELS = 128 * 32 * 32
QWEN_VL_UTILS_TOTAL_PIXELS = 128000 * 32 * 32 * 0.9

# Bump when anything here changes what the model sees for the same frames (it is part of every cache key).
PROMPT_VERSION = 1


PROBE_QUERY = "a dog surfing"


def build_messages(query: str, instruction: str) -> list[dict[str, Any]]:
    """`format_mm_instruction` for a text query and a video document (the video item's sampling keys are the
    frame sampler's business here: `RERANKER.sampling`)."""
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": f"<Instruct>: {instruction}"},
                {"type": "text", "text": "<Query>:"},
                {"type": "text", "text": query},
                {"type": "text", "text": "\n<Document>:"},
                {"type": "video"},
            ],
        },
    ]


def build_prompt_text(query: str, instruction: str) -> str:
    """What the Qwen3-VL chat template renders for `build_messages` (generation prompt on), the video still the
    template's one `<|vision_start|><|video_pad|><|vision_end|>` block."""
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n<Instruct>: {instruction}<Query>:{query}\n<Document>:"
        "<|vision_start|><|video_pad|><|vision_end|><|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def render_prompt(processor: Any, query: str, instruction: str) -> str:
    return processor.apply_chat_template(build_messages(query, instruction), tokenize=False, add_generation_prompt=True)


def reference_cut(ids: Sequence[int], special_ids: set[int], max_length: int = MAX_LENGTH) -> list[int]:
    """`Qwen3VLReranker.tokenize`'s cut of one prompt: `truncate_tokens_optimized(ids[:-5]) + ids[-5:]`."""
    head, tail = list(ids[:-KEPT_TAIL]), list(ids[-KEPT_TAIL:])
    if len(head) <= max_length:
        return head + tail
    budget = max_length - sum(1 for token in head if token in special_ids)
    kept: list[int] = []
    text_kept = 0
    for token in head:
        if token in special_ids:
            kept.append(token)
        elif text_kept < budget:
            kept.append(token)
            text_kept += 1
    return kept + tail


def prompt_fingerprint(rendered_probe: str, instruction: str) -> str:
    import hashlib

    payload = f"qwen3-vl-reranker-v{PROMPT_VERSION}\x00{SYSTEM_PROMPT}\x00{instruction}\x00{rendered_probe}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class Qwen3VLRerankerRecipe:
    """The reference's prompt, cut and score for one loaded processor."""

    def __init__(self, processor: Any, settings: RecipeSettings) -> None:
        self.processor = processor
        self.instruction = RERANKER.instruction(settings) or DEFAULT_INSTRUCTION
        self.rendered = render_prompt(processor, PROBE_QUERY, self.instruction)
        self.prompts_cut = 0
        self._warned: set[str] = set()

    @cached_property
    def yes_ids(self) -> list[int]:
        return [self._single_id("yes")]

    @cached_property
    def no_ids(self) -> list[int]:
        return [self._single_id("no")]

    def _single_id(self, word: str) -> int:
        """Read from the tokenizer when scoring (and when the template is checked, at load), not for a
        fingerprint, which is read from the chat template alone."""
        vocab = self.processor.tokenizer.get_vocab()
        if "yes" not in vocab or "no" not in vocab:
            raise ValueError("the tokenizer has no single 'yes' or 'no' token, which Qwen3-VL-Reranker scores")
        return int(vocab[word])

    @cached_property
    def special_ids(self) -> set[int]:
        return {int(token) for token in self.processor.tokenizer.all_special_ids}

    def check_template(self, model_id: str) -> None:
        from rankvideo_cli.scoring.prompt import FidelityError

        self._single_id("yes")  # a tokenizer without yes or no is refused at load, before any video
        for name, text in (("system", SYSTEM_PROMPT), ("instruction", f"<Instruct>: {self.instruction}<Query>:")):
            if text not in self.rendered:
                raise FidelityError(
                    f"{model_id}'s chat template does not render Qwen3-VL-Reranker's {name} text as it is "
                    f"({text[:60]!r}...): the model would not see the prompt its reference gives it"
                )
        if self.rendered != build_prompt_text(PROBE_QUERY, self.instruction):
            logger.warning(
                "%s's chat template renders Qwen3-VL-Reranker's prompt differently from Qwen3-VL's; using the "
                "model's own template, as the reference does",
                model_id,
            )

    def prompt_hash(self) -> str:
        return prompt_fingerprint(self.rendered, self.instruction)

    def fingerprint_fields(self) -> dict[str, str]:
        return {"reranker": RERANKER.name, "instruction": self.instruction, "max_length": str(MAX_LENGTH)}

    def video_processor_options(self) -> dict[str, Any]:
        # the reference calls the processor with `do_resize=False`: 64 frames of 640x1152 pass the processor's
        # whole-video `size.longest_edge` (24,576 x 1,024 pixels), which would otherwise shrink them
        return {"do_resize": False}

    def prompt_batch(self, queries: list[str], video_inputs: VideoInputs) -> PromptBatch:
        from rankvideo_cli.scoring.prompt import tokenize_prompts

        def render(processor: Any, query: str) -> str:
            return render_prompt(processor, query, self.instruction)

        return tokenize_prompts(self.processor, queries, video_inputs, render=render, window_cut=self._cut)

    def _cut(self, query: str, ids: list[int]) -> list[int]:
        if len(ids) - KEPT_TAIL <= MAX_LENGTH:
            return ids
        kept = reference_cut(ids, self.special_ids)
        self.prompts_cut += 1
        if query not in self._warned:
            self._warned.add(query)
            shown = query if len(query) <= 60 else query[:57] + "..."
            logger.warning(
                "a prompt of %d tokens is over Qwen3-VL-Reranker's %d-token window: cut by its reference's rule, "
                "%d text tokens dropped from the end (the video's timestamps, then the query's end); query %r",
                len(ids),
                MAX_LENGTH,
                len(ids) - len(kept),
                shown,
            )
        return kept

    def scores(self, hidden: torch.Tensor, lm_head: Any) -> list[PairScore]:
        """`hidden`: (B, 1, D) last-position states. The logit is the reference's linear head, in the model's
        dtype; the log-probabilities come from the full LM head."""
        import torch

        from rankvideo_cli.scoring.base import PairScore, p_yes_of

        weight = lm_head.weight
        difference = (weight[self.yes_ids[0]] - weight[self.no_ids[0]]).unsqueeze(0)
        logits = torch.nn.functional.linear(hidden[:, -1, :], difference).float()[:, 0]
        logprobs = torch.log_softmax(lm_head(hidden)[:, -1, :].float(), dim=-1)
        yes, no = logprobs[:, self.yes_ids[0]].tolist(), logprobs[:, self.no_ids[0]].tolist()
        return [
            PairScore(logit_delta=delta, p_yes=p_yes_of(delta), logprob_yes=y, logprob_no=n)
            for delta, y, n in zip(logits.tolist(), yes, no, strict=True)
        ]

    def describe(self) -> dict[str, str]:
        return {"prompts_cut": str(self.prompts_cut)}


RERANKER = Reranker(
    name="qwen3-vl-reranker",
    summary="Qwen3-VL-Reranker's instruction prompt, 1 fps up to 64 frames, sigmoid(yes - no)",
    hub_ids=("Qwen/Qwen3-VL-Reranker-2B", "Qwen/Qwen3-VL-Reranker-8B"),
    sampling=SamplingConfig(
        fps=1.0,
        min_frames=4,
        max_frames=64,
        min_pixels=QWEN_VL_UTILS_MIN_PIXELS,
        max_pixels=None,
        total_pixels=QWEN_VL_UTILS_TOTAL_PIXELS,
        fit_total_pixels=MAX_TOTAL_PIXELS,
    ),
    recipe=Qwen3VLRerankerRecipe,
    default_instruction=DEFAULT_INSTRUCTION,
    explains=False,
)
