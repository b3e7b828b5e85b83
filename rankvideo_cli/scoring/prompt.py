"""The exact RankVideo prompt and model inputs (REFERENCE.md sections 3 and 4).

The reference renders the chat template, then lets the Qwen3-VL processor expand the video placeholder into
per-pair `<t seconds><|vision_start|>` + `<|video_pad|>`*n + `<|vision_end|>` blocks. transformers 5.x
keeps the template's own `<|vision_start|>...<|vision_end|>` around that expansion (two extra tokens the
model never saw in training); `tokenize_prompts` puts the expansion in place of the template's whole block, so
the token ids equal those of transformers 4.57 and vLLM.

The video side (pixels, grid, placeholder text) is computed once per video (`encode_video`) and reused for
every query scored against it; only the text is tokenised per query (`tokenize_prompts`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rankvideo_cli.errors import RankVideoError

if TYPE_CHECKING:  # the prompt's text and hash need neither (a fingerprint is read without torch)
    import torch

    from rankvideo_cli.videos.frames import SampledVideo

SYSTEM_PROMPT = (
    "You are a helpful assistant specialized in video and text understanding. "
    "Given a text query and a video, your task is to determine if the video is relevant to the query. "
    "Respond with <answer>yes</answer> if the video is relevant, or <answer>no</answer> if it is not. "
)

USER_PROMPT = (
    "Query: {query}\nIs the video relevant to the query? Respond with <answer>yes</answer> or <answer>no</answer>."
)

VIDEO_TOKEN = "<|video_pad|>"
VISION_START = "<|vision_start|>"
VISION_END = "<|vision_end|>"
TEMPLATE_VIDEO_BLOCK = VISION_START + VIDEO_TOKEN + VISION_END

# Bump when anything below changes what the model sees for the same frames (it is part of every cache key).
PROMPT_VERSION = 1


def build_messages(query: str) -> list[dict[str, Any]]:
    """The reference's chat messages: system text, then a user turn with the text item before the video."""
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM_PROMPT}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": USER_PROMPT.format(query=query)},
                {"type": "video"},
            ],
        },
    ]


def build_prompt_text(query: str) -> str:
    """What the Qwen3-VL Instruct chat template renders for `build_messages(query)` (generation prompt on).

    The video is still the template's single `<|vision_start|><|video_pad|><|vision_end|>` block here.
    """
    return (
        f"<|im_start|>system\n{SYSTEM_PROMPT}<|im_end|>\n"
        f"<|im_start|>user\n{USER_PROMPT.format(query=query)}{TEMPLATE_VIDEO_BLOCK}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def render_prompt(processor: Any, query: str) -> str:
    """The prompt as the loaded model's own chat template renders it (what the reference does)."""
    return processor.apply_chat_template(build_messages(query), tokenize=False, add_generation_prompt=True)


def prompt_fingerprint(rendered_probe: str) -> str:
    """Short hash of everything textual the model sees (the template as rendered for a probe query)."""
    payload = f"v{PROMPT_VERSION}\x00{SYSTEM_PROMPT}\x00{USER_PROMPT}\x00{rendered_probe}".encode()
    return hashlib.sha256(payload).hexdigest()[:16]


PROBE_QUERY = "a dog surfing"


def processor_videos_kwargs(video: SampledVideo) -> dict[str, Any]:
    """Video-processor settings for frames that are already sampled and resized (REFERENCE.md section 3).

    The metadata carries the SOURCE fps and indices, so the timestamps are the reference's; without it the
    processor assumes 24 fps. The per-frame pixel cap is left off as in transformers 4.57 (the frames are
    already at their final size, so the processor's resize is the identity either way).
    """
    return {
        "do_sample_frames": False,
        "video_metadata": [video.processor_metadata()],
        "return_metadata": True,
        "cap_pixels_per_frame": False,
    }


class FidelityError(RankVideoError):
    """The loaded checkpoint would not see the inputs RankVideo was trained on; nothing is scored."""


# Qwen3-VL's video patching (REFERENCE.md section 3): 2 frames x 16 x 16 pixels per patch.
TEMPORAL_PATCH = 2
PATCH = 16


def check_video_grid(grid: torch.Tensor, frames_shape: tuple[int, ...], video_processor: Any) -> None:
    """The processor must patch the frames we sampled as they are: grid (T/2, H/16, W/16). A checkpoint whose
    video-processor settings resize or re-patch them would show the model other inputs than in training."""
    frames, _channels, height, width = frames_shape
    expected = [frames // TEMPORAL_PATCH, height // PATCH, width // PATCH]
    found = [int(value) for value in grid.reshape(-1, 3)[0].tolist()]
    if found == expected:
        return
    settings = {
        name: getattr(video_processor, name, None)
        for name in ("size", "patch_size", "temporal_patch_size", "merge_size", "do_resize")
    }
    shown = ", ".join(f"{name}={value}" for name, value in settings.items())
    raise FidelityError(
        f"the checkpoint's video processor turns {frames} sampled frames of {height}x{width} into a grid of "
        f"{found} patches, not {expected}: its preprocessor settings ({shown}) differ from Qwen3-VL's "
        "(patch_size=16, temporal_patch_size=2, size.longest_edge >= the frames' pixels), so RankVideo would not "
        "see the frames it was trained on; fix the checkpoint's video_preprocessor_config.json"
    )


@dataclass
class VideoInputs:
    """The processor's output for one video, shared by every query scored against it."""

    pixel_values_videos: torch.Tensor  # (patches, 3 * temporal * patch * patch), float32, normalised
    video_grid_thw: torch.Tensor  # (1, 3): temporal pairs, patch rows, patch columns
    placeholder: str  # per-pair `<t seconds><|vision_start|>` + pads + `<|vision_end|>`
    # token ids of the prompt's query-independent end, per template tail (filled by `tokenize_prompts`)
    shared_ids: dict[str, list[int]] = field(default_factory=dict)

    @property
    def video_tokens(self) -> int:
        return self.placeholder.count(VIDEO_TOKEN)


def encode_video(
    processor: Any,
    video: SampledVideo,
    device: torch.device | str | None = None,
    options: dict[str, Any] | None = None,
) -> VideoInputs:
    """Run the processor's video part once: normalised patches, grid and the timestamped placeholder text.
    `options`: a reranker's own processor settings (`Recipe.video_processor_options`).

    `device`: where the rescale, normalisation and patchifying run and the patches stay (the model's GPU
    saves a CPU pass over ~47 MB per 32-frame video); None keeps them on the CPU.
    """
    import torch

    frames = video.frames
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be uint8 (T, 3, H, W), got {frames.dtype} {tuple(frames.shape)}")
    options = {**processor_videos_kwargs(video), **(options or {})}
    if device is not None:
        options["device"] = str(device)
    processed = processor.video_processor(videos=[frames], return_tensors="pt", **options)
    check_video_grid(processed["video_grid_thw"], tuple(frames.shape), processor.video_processor)
    placeholder = processor.replace_video_token(processed, video_idx=0)
    return VideoInputs(
        pixel_values_videos=processed["pixel_values_videos"],
        video_grid_thw=processed["video_grid_thw"],
        placeholder=placeholder,
    )


@dataclass
class PromptBatch:
    """Tokenised prompts for B queries against one video, left-padded: every row ends at the last position."""

    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    mm_token_type_ids: torch.Tensor  # (B, L): 2 at video tokens
    texts: list[str]

    def right_padded(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`input_ids` and `mm_token_type_ids` with each row's padding moved after its last token, and the rows'
        lengths. Under causal attention a token after a row's last one cannot change it, so such a batch needs
        no attention mask: the kernels then skip the future half of the attention square, which the explicit
        mask of left padding makes them compute (3.6x the time per pair on a CPU at 7.4k tokens)."""
        import torch

        lengths = self.attention_mask.sum(dim=1)
        width = self.input_ids.shape[1]
        index = (torch.arange(width).unsqueeze(0) + (width - lengths).unsqueeze(1)) % width
        return self.input_ids.gather(1, index), self.mm_token_type_ids.gather(1, index), lengths


def tokenize_prompts(
    processor: Any,
    queries: Sequence[str],
    video_inputs: VideoInputs,
    *,
    render: Callable[[Any, str], str] = render_prompt,
    window_cut: Callable[[str, list[int]], list[int]] | None = None,
) -> PromptBatch:
    """Template (`render`: RankVideo's prompt unless a reranker gives its own), expand and tokenise each query's
    prompt, left-padded; the video tokens are checked per row. `window_cut(query, ids)`: a reranker's rule for a
    prompt longer than its window, applied to each row before padding.

    The ids equal those of tokenising each whole prompt (the tests compare with the processor's own call),
    but only the query-dependent part is tokenised per query. Special tokens are split points for the
    tokenizer, so a prompt can be cut at one: everything from the first pair's `<|vision_start|>` on (the
    pads, the other timestamps, the end of the turn: ~95% of the prompt) is the same for every query and is
    tokenised once per video.
    """
    import torch

    cut = video_inputs.placeholder.index(VISION_START)
    lead_in, video_part = video_inputs.placeholder[:cut], video_inputs.placeholder[cut:]
    tokenizer = processor.tokenizer
    heads: list[str] = []
    texts: list[str] = []
    tail: str | None = None
    for query in queries:
        templated = render(processor, query)
        if templated.count(TEMPLATE_VIDEO_BLOCK) != 1:
            raise ValueError(f"expected exactly one {TEMPLATE_VIDEO_BLOCK} in the templated prompt")
        head, query_tail = templated.split(TEMPLATE_VIDEO_BLOCK)
        if tail is not None and query_tail != tail:
            raise ValueError("the chat template's text after the video differs between queries")
        tail = query_tail
        heads.append(head + lead_in)
        texts.append(head + video_inputs.placeholder + query_tail)
    if tail is None:
        raise ValueError("no queries to tokenise")
    shared = video_inputs.shared_ids.get(tail)
    if shared is None:
        shared = tokenizer(video_part + tail, add_special_tokens=False)["input_ids"]
        video_inputs.shared_ids[tail] = shared
    own = tokenizer(heads, add_special_tokens=False)["input_ids"]
    rows = [head_ids + shared for head_ids in own]
    if window_cut is not None:
        rows = [window_cut(query, row) for query, row in zip(queries, rows, strict=True)]
    width = max(len(row) for row in rows)
    pad_id = tokenizer.pad_token_id
    input_ids = torch.tensor([[pad_id] * (width - len(row)) + row for row in rows], dtype=torch.long)
    attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows], dtype=torch.long)
    video_counts = (input_ids == processor.video_token_id).sum(dim=1)
    if not bool((video_counts == video_inputs.video_tokens).all()):
        raise ValueError(
            f"video tokens per prompt {video_counts.tolist()} != {video_inputs.video_tokens}: "
            f"a query must not contain {VIDEO_TOKEN}"
        )
    mm_token_type_ids = torch.tensor(processor.create_mm_token_type_ids(input_ids), dtype=torch.long)
    return PromptBatch(
        input_ids=input_ids,
        attention_mask=attention_mask,
        mm_token_type_ids=mm_token_type_ids,
        texts=texts,
    )


def prepare_inputs(processor: Any, queries: Sequence[str], video: SampledVideo) -> dict[str, torch.Tensor]:
    """Model inputs for `queries` x one video, ready for `model(**inputs)`.

    Equal to what the full processor call returns for B copies of the video (pixels repeated per row); the
    scorer itself does not repeat the pixels, it reuses one vision-tower pass.
    """
    video_inputs = encode_video(processor, video)
    batch = tokenize_prompts(processor, queries, video_inputs)
    count = len(queries)
    return {
        "input_ids": batch.input_ids,
        "attention_mask": batch.attention_mask,
        "mm_token_type_ids": batch.mm_token_type_ids,
        "pixel_values_videos": video_inputs.pixel_values_videos.repeat(count, 1),
        "video_grid_thw": video_inputs.video_grid_thw.repeat(count, 1),
    }
