"""Golden tests: the exact prompt and model inputs RankVideo saw in training (REFERENCE.md sections 3-4).

Expected values are the reference's (REFERENCE.md and the Qwen3-VL release), written out here, never
computed by the code under test.
"""

from __future__ import annotations

import re

import pytest
import torch

from rankvideo_cli.scoring.prompt import (
    SYSTEM_PROMPT,
    TEMPLATE_VIDEO_BLOCK,
    VIDEO_TOKEN,
    build_messages,
    build_prompt_text,
    encode_video,
    prepare_inputs,
    render_prompt,
    tokenize_prompts,
)
from rankvideo_cli.videos.frames import SampledVideo

EXPECTED_SYSTEM = (
    "You are a helpful assistant specialized in video and text understanding. Given a text query and a "
    "video, your task is to determine if the video is relevant to the query. Respond with "
    "<answer>yes</answer> if the video is relevant, or <answer>no</answer> if it is not. "
)
EXPECTED_DOG_PROMPT = (
    "<|im_start|>system\n" + EXPECTED_SYSTEM + "<|im_end|>\n"
    "<|im_start|>user\nQuery: a dog surfing\nIs the video relevant to the query? Respond with "
    "<answer>yes</answer> or <answer>no</answer>.<|vision_start|><|video_pad|><|vision_end|><|im_end|>\n"
    "<|im_start|>assistant\n"
)
# REFERENCE.md section 1's worked example: 25 fps, 61 s, N = 1525 -> 32 frames.
INDICES_25FPS_61S = [round(i * 1524 / 31) for i in range(32)]
# ... and 30 fps, 10 s, N = 300 -> 20 frames.
INDICES_30FPS_10S = [
    0,
    16,
    31,
    47,
    63,
    79,
    94,
    110,
    126,
    142,
    157,
    173,
    189,
    205,
    220,
    236,
    252,
    268,
    283,
    299,
]


def _video(frames: int, height: int, width: int, fps: float, total: int, indices: list[int]) -> SampledVideo:
    generator = torch.Generator().manual_seed(frames * 7 + height)
    pixels = torch.randint(0, 256, (frames, 3, height, width), generator=generator, dtype=torch.uint8)
    return SampledVideo(
        path="golden.mp4",
        frames=pixels,
        source_fps=fps,
        total_frames=total,
        frame_indices=indices,
        source_size=(720, 1280),
    )


@pytest.fixture(scope="module")
def golden_video() -> SampledVideo:
    """32 frames at 256x480 (a 1280x720 source), 25 fps, 61 s."""
    assert INDICES_25FPS_61S[:3] == [0, 49, 98] and INDICES_25FPS_61S[-1] == 1524
    return _video(32, 256, 480, 25.0, 1525, INDICES_25FPS_61S)


def test_system_prompt_keeps_its_trailing_space() -> None:
    assert SYSTEM_PROMPT == EXPECTED_SYSTEM


def test_prompt_text_is_the_reference_string() -> None:
    assert build_prompt_text("a dog surfing") == EXPECTED_DOG_PROMPT


def test_messages_put_the_text_item_before_the_video() -> None:
    user = build_messages("q")[1]
    assert [item["type"] for item in user["content"]] == ["text", "video"]


def test_qwen3vl_chat_template_renders_the_reference_string(tiny_loaded) -> None:
    assert render_prompt(tiny_loaded.processor, "a dog surfing") == EXPECTED_DOG_PROMPT


def test_golden_video_inputs(tiny_loaded, golden_video: SampledVideo) -> None:
    video_inputs = encode_video(tiny_loaded.processor, golden_video)
    assert video_inputs.video_grid_thw.tolist() == [[16, 16, 30]]
    assert tuple(video_inputs.pixel_values_videos.shape) == (7680, 1536)
    assert video_inputs.pixel_values_videos.dtype == torch.float32
    assert video_inputs.video_tokens == 1920  # 16 pairs x 256*480/1024


def test_golden_token_ids(tiny_loaded, golden_video: SampledVideo) -> None:
    processor = tiny_loaded.processor
    batch = tokenize_prompts(processor, ["a dog surfing"], encode_video(processor, golden_video))
    ids = batch.input_ids[0].tolist()
    assert len(ids) == 2168
    # <|im_start|> system \n You are a helpful assistant
    assert ids[:8] == [151644, 8948, 198, 2610, 525, 264, 10950, 17847]
    # ... <|im_end|> \n <|im_start|> assistant \n
    assert ids[-5:] == [151645, 198, 151644, 77091, 198]
    assert ids.count(151656) == 1920  # <|video_pad|>
    assert ids.count(151652) == 16 and ids.count(151653) == 16  # one <|vision_start|>/<|vision_end|> per pair
    assert batch.attention_mask.all()
    assert batch.mm_token_type_ids[0].tolist() == [2 if token == 151656 else 0 for token in ids]


def test_per_pair_layout_has_no_outer_wrapper(tiny_loaded, golden_video: SampledVideo) -> None:
    processor = tiny_loaded.processor
    (text,) = tokenize_prompts(processor, ["a dog surfing"], encode_video(processor, golden_video)).texts
    pads = VIDEO_TOKEN * 120  # 256*480/1024 per pair
    # pair k covers frames 2k and 2k+1: t_k = (idx[2k] + idx[2k+1]) / 2 / 25
    times = [(INDICES_25FPS_61S[2 * k] + INDICES_25FPS_61S[2 * k + 1]) / 2 / 25 for k in range(16)]
    blocks = "".join(f"<{t:.1f} seconds><|vision_start|>{pads}<|vision_end|>" for t in times)
    expected = EXPECTED_DOG_PROMPT.replace(TEMPLATE_VIDEO_BLOCK, blocks)
    assert text == expected
    assert text.startswith(EXPECTED_DOG_PROMPT.split(TEMPLATE_VIDEO_BLOCK)[0] + "<1.0 seconds><|vision_start|>")
    assert "<|vision_start|><1.0 seconds>" not in text and "<|vision_end|><|vision_end|>" not in text


def test_timestamps_use_the_source_fps_and_indices(tiny_loaded) -> None:
    video = _video(20, 64, 96, 30.0, 300, INDICES_30FPS_10S)
    placeholder = encode_video(tiny_loaded.processor, video).placeholder
    stamps = re.findall(r"<(\d+\.\d) seconds>", placeholder)
    assert stamps == ["0.3", "1.3", "2.4", "3.4", "4.5", "5.5", "6.6", "7.6", "8.7", "9.7"]


def test_transformers5_wrapper_trap_is_avoided(tiny_loaded, golden_video: SampledVideo) -> None:
    """transformers 5.18-5.24's processor fed the raw template keeps the outer wrapper: two tokens more than the
    reference; 5.25 expands the whole block, as 4.57 and vLLM do. Our ids are the reference's either way."""
    processor = tiny_loaded.processor
    ours = tokenize_prompts(processor, ["a dog surfing"], encode_video(processor, golden_video)).input_ids
    assert ours.shape[1] == 2168
    videos_kwargs = {"do_sample_frames": False, "video_metadata": [golden_video.processor_metadata()]}
    trap = processor(
        text=[EXPECTED_DOG_PROMPT],
        videos=[golden_video.frames],
        videos_kwargs=videos_kwargs,
        return_tensors="pt",
    )["input_ids"]
    if trap.shape[1] == 2170:  # the trap
        assert "<|vision_start|><1.0 seconds><|vision_start|>" in processor.tokenizer.decode(trap[0])
    else:  # a transformers that expands the whole block, as 4.57 and vLLM do
        assert torch.equal(trap, ours)
    fixed = processor(
        text=[EXPECTED_DOG_PROMPT.replace(TEMPLATE_VIDEO_BLOCK, VIDEO_TOKEN)],
        videos=[golden_video.frames],
        videos_kwargs=videos_kwargs,
        return_tensors="pt",
    )["input_ids"]
    assert torch.equal(ours, fixed)


def test_normalisation_and_patch_layout(tiny_loaded, golden_video: SampledVideo) -> None:
    pixels = encode_video(tiny_loaded.processor, golden_video).pixel_values_videos
    frames = golden_video.frames.float()
    # first patch: frames 0-1, rows 0-15, columns 0-15, flattened as (channel, time, row, column)
    first = ((frames[0:2, :, 0:16, 0:16] - 127.5) / 127.5).permute(1, 0, 2, 3).reshape(-1)
    torch.testing.assert_close(pixels[0], first, rtol=0, atol=1e-6)
    # the next patch in a 2x2 merge group is one patch to the right
    second = ((frames[0:2, :, 0:16, 16:32] - 127.5) / 127.5).permute(1, 0, 2, 3).reshape(-1)
    torch.testing.assert_close(pixels[1], second, rtol=0, atol=1e-6)
    assert float(pixels.min()) >= -1.0 and float(pixels.max()) <= 1.0


def test_prepare_inputs_equals_the_processor_for_a_batch(tiny_loaded, make_sampled_video) -> None:
    processor = tiny_loaded.processor
    video = make_sampled_video(seed=3, frames=6, total_frames=150)
    queries = ["a dog", "two people crossing a street at night in the rain", "fire"]
    ours = prepare_inputs(processor, queries, video)
    texts = [build_prompt_text(q).replace(TEMPLATE_VIDEO_BLOCK, VIDEO_TOKEN) for q in queries]
    theirs = processor(
        text=texts,
        videos=[video.frames] * 3,
        videos_kwargs={"do_sample_frames": False, "video_metadata": [video.processor_metadata()] * 3},
        padding=True,
        padding_side="left",
        return_tensors="pt",
    )
    assert set(ours) == {
        "input_ids",
        "attention_mask",
        "mm_token_type_ids",
        "pixel_values_videos",
        "video_grid_thw",
    }
    for key in ours:
        assert torch.equal(ours[key], theirs[key].to(ours[key].dtype)), key
    # left padding: every row ends with the assistant header, the short rows start with <|endoftext|> pads
    assert ours["input_ids"][:, -1].tolist() == [198, 198, 198]
    assert ours["input_ids"][0, 0] == 151643 and ours["attention_mask"][0, 0] == 0


def test_a_query_holding_a_video_token_is_refused(tiny_loaded, make_sampled_video) -> None:
    processor = tiny_loaded.processor
    video_inputs = encode_video(processor, make_sampled_video())
    with pytest.raises(ValueError, match="video_pad"):
        tokenize_prompts(processor, [f"sneaky {VIDEO_TOKEN}"], video_inputs)


TRICKY_QUERIES = [
    "",
    "  leading and trailing spaces  ",
    "Café 東京 — 🐶 surfing?!",
    "ends with a dot.",
    "line one\nline two\n",
    "a query with <|im_end|> inside",
    "<",
    "numbers 12345 and 'quotes' don't",
]


def test_split_tokenisation_equals_whole_prompt_tokenisation(tiny_loaded, make_sampled_video) -> None:
    processor = tiny_loaded.processor
    video_inputs = encode_video(processor, make_sampled_video(seed=4, frames=6, total_frames=150))
    batch = tokenize_prompts(processor, TRICKY_QUERIES, video_inputs)
    whole = processor.tokenizer(batch.texts, padding=True, padding_side="left", return_tensors="pt")
    assert torch.equal(batch.input_ids, whole["input_ids"])
    assert torch.equal(batch.attention_mask, whole["attention_mask"])
    # a second batch reuses the shared part tokenised for the first
    again = tokenize_prompts(processor, TRICKY_QUERIES[:2], video_inputs)
    assert torch.equal(again.input_ids[0], batch.input_ids[0, -again.input_ids.shape[1] :])


def test_video_processing_device_keeps_the_values(tiny_loaded, make_sampled_video) -> None:
    video = make_sampled_video(seed=2)
    default = encode_video(tiny_loaded.processor, video)
    explicit = encode_video(tiny_loaded.processor, video, device="cpu")
    assert torch.equal(default.pixel_values_videos, explicit.pixel_values_videos)
    assert torch.equal(default.video_grid_thw, explicit.video_grid_thw)
    assert default.placeholder == explicit.placeholder


# --- fidelity guards on a loaded checkpoint ---------------------------------------------------------------


def test_a_video_processor_that_resizes_the_frames_is_refused_naming_its_settings(tiny_loaded, make_sampled_video):
    import copy

    from rankvideo_cli.scoring.prompt import FidelityError, encode_video

    video = make_sampled_video(frames=4, height=64, width=96)
    assert encode_video(tiny_loaded.processor, video).video_grid_thw.tolist() == [[2, 4, 6]]
    shrinking = copy.deepcopy(tiny_loaded.processor)
    shrinking.video_processor.size = {"longest_edge": 2 * 32 * 32, "shortest_edge": 1024}
    with pytest.raises(FidelityError, match=r"grid of \[2, 2, 2\] patches, not \[2, 4, 6\]: .*size=.*longest_edge"):
        encode_video(shrinking, video)


def test_scoring_with_such_a_checkpoint_fails_with_a_one_line_user_error(tiny_loaded, make_sampled_video):
    import copy

    from rankvideo_cli.errors import RankVideoError
    from rankvideo_cli.scoring.prompt import FidelityError
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer

    shrinking = copy.deepcopy(tiny_loaded.processor)
    shrinking.video_processor.size = {"longest_edge": 2 * 32 * 32, "shortest_edge": 1024}
    scorer = Qwen3VLScorer(tiny_loaded.model, shrinking, model_id="tiny-random")
    with pytest.raises(FidelityError) as refused:
        scorer.score_video(["a query"], make_sampled_video(frames=4, height=64, width=96))
    assert "\n" not in str(refused.value)
    assert isinstance(refused.value, RankVideoError)  # the CLI prints it as one line, exit 2, and stops


def test_a_chat_template_that_changes_the_reference_text_is_refused(tiny_loaded):
    import copy

    from rankvideo_cli.scoring.prompt import FidelityError
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer

    upper = copy.deepcopy(tiny_loaded.processor)
    upper.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% for c in m['content'] %}"
        "{% if c['type'] == 'text' %}{{ c['text'] | upper }}{% else %}<|vision_start|><|video_pad|><|vision_end|>"
        "{% endif %}{% endfor %}<|im_end|>\n{% endfor %}<|im_start|>assistant\n"
    )
    with pytest.raises(FidelityError, match="does not render the reference's system text"):
        Qwen3VLScorer(tiny_loaded.model, upper, model_id="odd-template")
