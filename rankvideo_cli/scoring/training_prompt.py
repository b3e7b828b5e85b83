"""The prompt RankVideo was trained with (`--prompt training`, experimental; REFERENCE.md section 9).

The authors' `train_reranker.py` (github:tskow99/RANKVIDEO-Reasoning-Reranker) builds, per (query, video):

    system:    TRAINING_SYSTEM_PROMPT
    user:      [the video, then TRAINING_USER_PROMPT with the query]
    assistant: <answer>yes</answer>  (or no: the label)

renders it with the model's chat template (`add_generation_prompt=False`), and scores the pair as
`logit[yes] - logit[no]` at the last token of `<answer>` inside the assistant turn (its collator's
`answer_logit_pos`), with the single ids `encode("yes")[0]` and `encode("no")[0]`. Causal attention means the
label and what follows it cannot change that position's logits, so the prompt scored here is the rendered
conversation cut right after `<answer>`.

The published evaluation used the other prompt (`prompt.py`, query first): that stays the default.

With the video first, everything up to the last `<|vision_end|>` is the same for every query of a video; that
prefix is what `prefix_cache` computes once per video. Special tokens are split points for the tokenizer, so
the prefix and each query's suffix can be tokenised apart with the ids of the whole prompt (tested).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rankvideo_cli.scoring.base import INFERENCE_PROMPT, PROMPT_FORMATS, TRAINING_PROMPT
from rankvideo_cli.scoring.prompt import (
    PROBE_QUERY,
    TEMPLATE_VIDEO_BLOCK,
    VIDEO_TOKEN,
    PromptBatch,
    VideoInputs,
    prompt_fingerprint,
    render_prompt,
)

TRAINING_SYSTEM_PROMPT = (
    "You are a helpful assistant specialized in video and text understanding. "
    "Given a text query and a video, determine if the video is relevant."
)
TRAINING_USER_PROMPT = "Query: {query}\nIs the video relevant? Answer with yes or no."
ASSISTANT_HEADER = "<|im_start|>assistant\n"
ANSWER_OPEN = "<answer>"
# The label the conversation is rendered with before the cut; it never reaches the model.
RENDER_LABEL = "yes"

# Bump when anything below changes what the model sees for the same frames (it is part of every cache key).
TRAINING_PROMPT_VERSION = 1


def build_training_messages(query: str, answer: str = RENDER_LABEL) -> list[dict[str, Any]]:
    """The training collator's conversation: the video item before the text, and the assistant's answer."""
    return [
        {"role": "system", "content": [{"type": "text", "text": TRAINING_SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [{"type": "video"}, {"type": "text", "text": TRAINING_USER_PROMPT.format(query=query)}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": f"{ANSWER_OPEN}{answer}</answer>"}]},
    ]


def build_training_prompt_text(query: str) -> str:
    """What the Qwen3-VL Instruct chat template renders for `build_training_messages`, cut after `<answer>`."""
    return (
        f"<|im_start|>system\n{TRAINING_SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{TEMPLATE_VIDEO_BLOCK}{TRAINING_USER_PROMPT.format(query=query)}<|im_end|>\n"
        f"{ASSISTANT_HEADER}{ANSWER_OPEN}"
    )


def cut_after_answer_open(rendered: str) -> str:
    """The rendered training conversation up to and including the assistant turn's `<answer>` (the position the
    training objective reads)."""
    header = rendered.rfind(ASSISTANT_HEADER)
    if header < 0:
        raise ValueError(f"the rendered training conversation has no {ASSISTANT_HEADER!r}")
    opening = rendered.find(ANSWER_OPEN, header)
    if opening < 0:
        raise ValueError(f"the rendered training conversation has no {ANSWER_OPEN!r} in the assistant turn")
    return rendered[: opening + len(ANSWER_OPEN)]


def render_training_prompt(processor: Any, query: str) -> str:
    """The training prompt as the loaded model's own chat template renders it, cut after `<answer>`."""
    rendered = processor.apply_chat_template(
        build_training_messages(query), tokenize=False, add_generation_prompt=False
    )
    return cut_after_answer_open(rendered)


def training_prompt_fingerprint(rendered_probe: str) -> str:
    """Short hash of everything textual the model sees with the training prompt."""
    payload = (
        f"training-v{TRAINING_PROMPT_VERSION}\x00{TRAINING_SYSTEM_PROMPT}\x00{TRAINING_USER_PROMPT}\x00{rendered_probe}"
    ).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def rendered_probe(processor: Any, prompt_format: str) -> str:
    """The prompt `prompt_format` renders for the probe query with the model's own template."""
    if prompt_format == TRAINING_PROMPT:
        return render_training_prompt(processor, PROBE_QUERY)
    if prompt_format == INFERENCE_PROMPT:
        return render_prompt(processor, PROBE_QUERY)
    raise ValueError(f"prompt must be one of {', '.join(PROMPT_FORMATS)}, got {prompt_format!r}")


def prompt_hash(processor: Any, prompt_format: str, rendered: str | None = None) -> str:
    """The fingerprint's `prompt` field: what the loaded scorer and `loading.predict_fingerprint` both use.
    `rendered`: `rendered_probe(processor, prompt_format)` where the caller has it already."""
    if rendered is None:
        rendered = rendered_probe(processor, prompt_format)
    if prompt_format == TRAINING_PROMPT:
        return training_prompt_fingerprint(rendered)
    return prompt_fingerprint(rendered)


def training_answer_ids(tokenizer: Any) -> tuple[int, int]:
    """The training objective's yes / no ids: the first id of `encode("yes")` and of `encode("no")`."""
    yes = tokenizer.encode("yes", add_special_tokens=False)
    no = tokenizer.encode("no", add_special_tokens=False)
    if not yes or not no:
        raise ValueError("the tokenizer encodes 'yes' or 'no' to no ids")
    return int(yes[0]), int(no[0])


@dataclass
class SplitPrompts:
    """The training prompts of B queries against one video, cut where the query begins."""

    prefix_ids: list[int]  # system turn, user header and the video: the same for every query
    prefix_mm_token_type_ids: list[int]  # 2 at video tokens
    suffix_ids: list[list[int]]  # per query: `Query: ...` to `<answer>`
    texts: list[str]  # the whole prompts, for inspection


def _prompt_halves(processor: Any, query: str) -> tuple[str, str]:
    templated = render_training_prompt(processor, query)
    if templated.count(TEMPLATE_VIDEO_BLOCK) != 1:
        raise ValueError(f"expected exactly one {TEMPLATE_VIDEO_BLOCK} in the templated training prompt")
    head, tail = templated.split(TEMPLATE_VIDEO_BLOCK)
    return head, tail


PREFIX_KEY = "training-prefix"


def split_training_prompts(processor: Any, queries: Sequence[str], video_inputs: VideoInputs) -> SplitPrompts:
    """Tokenise the training prompts as prefix (once per video, remembered on `video_inputs`) + suffixes.

    The template's head must be the same for every query (it is: the query comes after the video); a query
    holding a video token is refused, as with the inference prompt.
    """
    if not queries:
        raise ValueError("no queries to tokenise")
    tokenizer = processor.tokenizer
    head: str | None = None
    tails: list[str] = []
    for query in queries:
        query_head, tail = _prompt_halves(processor, query)
        if head is not None and query_head != head:
            raise ValueError("the chat template's text before the video differs between queries")
        head = query_head
        tails.append(tail)
    assert head is not None
    prefix = video_inputs.shared_ids.get(PREFIX_KEY)
    if prefix is None:
        prefix = tokenizer(head + video_inputs.placeholder, add_special_tokens=False)["input_ids"]
        video_inputs.shared_ids[PREFIX_KEY] = prefix
    if prefix.count(processor.video_token_id) != video_inputs.video_tokens:
        raise ValueError(f"the training prompt's prefix holds {prefix.count(processor.video_token_id)} video tokens")
    suffixes = tokenizer(tails, add_special_tokens=False)["input_ids"]
    for query, suffix in zip(queries, suffixes, strict=True):
        if processor.video_token_id in suffix:
            raise ValueError(f"a query must not contain {VIDEO_TOKEN}: {query[:60]!r}")
    mm_types = processor.create_mm_token_type_ids([prefix])[0]
    return SplitPrompts(
        prefix_ids=list(prefix),
        prefix_mm_token_type_ids=[int(value) for value in mm_types],
        suffix_ids=[list(suffix) for suffix in suffixes],
        texts=[head + video_inputs.placeholder + tail for tail in tails],
    )


def tokenize_training_prompts(processor: Any, queries: Sequence[str], video_inputs: VideoInputs) -> PromptBatch:
    """The whole training prompts, left-padded as `prompt.tokenize_prompts` pads the inference ones: the full
    pass (`--no-prefix-cache`) and `explain` use them."""
    import torch  # here: the prompt's text and hash are read without torch (a fingerprint before loading)

    split = split_training_prompts(processor, queries, video_inputs)
    rows = [split.prefix_ids + suffix for suffix in split.suffix_ids]
    width = max(len(row) for row in rows)
    pad_id = processor.tokenizer.pad_token_id
    input_ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows], dtype=torch.long)
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], dtype=torch.long)
    mm_token_type_ids = torch.tensor(processor.create_mm_token_type_ids(input_ids), dtype=torch.long)
    return PromptBatch(
        input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=mm_token_type_ids, texts=split.texts
    )
