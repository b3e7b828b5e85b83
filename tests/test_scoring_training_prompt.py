"""`--prompt training`: the authors' training prompt and objective (REFERENCE.md section 9), and the prefix cache
that scores every query of a video against one pass of its system turn and video.

Expected texts and ids are written out from `train_reranker.py` (github:tskow99/RANKVIDEO-Reasoning-Reranker)
and Qwen's vocabulary; the training collator's position rule is re-implemented here from that file, not taken
from the code under test. Reuse-vs-full-pass exactness: float32, within 1e-5.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
from helpers import golden_size_video

from rankvideo_cli.errors import UsageError
from rankvideo_cli.scoring import prefix_cache as prefix_module
from rankvideo_cli.scoring.base import check_prompt_options
from rankvideo_cli.scoring.loading import predict_fingerprint
from rankvideo_cli.scoring.memory import (
    CPU_SUFFIX_BATCH_SIZE,
    GIB,
    MAX_AUTO_SUFFIX_BATCH,
    QWEN3_VL_8B,
    auto_suffix_batch_size,
    prefix_cache_bytes,
)
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.scoring.prompt import TEMPLATE_VIDEO_BLOCK, VIDEO_TOKEN, encode_video
from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
from rankvideo_cli.scoring.training_prompt import (
    build_training_messages,
    build_training_prompt_text,
    render_training_prompt,
    split_training_prompts,
    tokenize_training_prompts,
    training_answer_ids,
)
from rankvideo_cli.videos.frames import SampledVideo

# train_reranker.py's SYSTEM_PROMPT and USER_PROMPT
TRAIN_SYSTEM = (
    "You are a helpful assistant specialized in video and text understanding. "
    "Given a text query and a video, determine if the video is relevant."
)
EXPECTED_DOG_TRAINING_PROMPT = (
    "<|im_start|>system\n" + TRAIN_SYSTEM + "<|im_end|>\n"
    "<|im_start|>user\n<|vision_start|><|video_pad|><|vision_end|>Query: a dog surfing\n"
    "Is the video relevant? Answer with yes or no.<|im_end|>\n"
    "<|im_start|>assistant\n<answer>"
)
# <|im_start|> system \n You are a helpful ... relevant . <|im_end|> \n <|im_start|> user \n
HEAD_IDS = [151644, 8948, 198, 2610, 525, 264, 10950, 17847, 27076, 304, 2766, 323, 1467, 8660, 13, 16246, 264, 1467]
HEAD_IDS += [3239, 323, 264, 2766, 11, 8253, 421, 279, 2766, 374, 9760, 13, 151645, 198, 151644, 872, 198]
# Query : a dog surfing \n Is the video relevant ? Answer with yes or no . <|im_end|> \n <|im_start|> assistant \n
# < answer >
DOG_SUFFIX_IDS = [2859, 25, 264, 5562, 57740, 198, 3872, 279, 2766, 9760, 30, 21806, 448, 9834, 476, 902, 13]
DOG_SUFFIX_IDS += [151645, 198, 151644, 77091, 198, 27, 9217, 29]
YES_ID, NO_ID = 9693, 2152  # encode("yes")[0], encode("no")[0]

SHORT = "fire"
LONG = " ".join(["a crowded night market in the rain with people carrying umbrellas past food stalls"] * 12)
QUERIES = [
    "a dog surfing",
    LONG,
    SHORT,
    "two people crossing a street at night near a river",
    "a news anchor speaking in a busy market filmed from a drone",
]


def _golden_video() -> SampledVideo:
    return golden_size_video(11)


def _find_last_subsequence(haystack: list[int], needle: list[int]) -> int:
    """rankvideo/utils.py's find_last_subsequence."""
    last = -1
    for i in range(0, len(haystack) - len(needle) + 1):
        if haystack[i : i + len(needle)] == needle:
            last = i
    return last


def _collator_answer_position(tokenizer, ids: list[int]) -> int:
    """RerankerCollator's answer_logit_pos for one row (train_reranker.py), written again from that file."""
    assistant = tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)
    alternatives = [tokenizer.encode(p, add_special_tokens=False) for p in ["<answer>", " <answer>", "\n<answer>"]]
    alternatives.append(tokenizer.encode("\n <answer>", add_special_tokens=False))
    start = _find_last_subsequence(ids, assistant)
    assert start != -1
    search = ids[start:]
    best = (-1, 0)
    for pattern in alternatives:
        found = -1
        for i in range(max(0, len(search) - len(pattern)), -1, -1):
            if search[i : i + len(pattern)] == pattern:
                found = i
                break
        if found != -1 and found > best[0]:
            best = (found, len(pattern))
    assert best[0] != -1
    return start + best[0] + best[1] - 1


def _training_scorer(loaded, **options) -> Qwen3VLScorer:
    return Qwen3VLScorer.from_loaded(loaded, prompt="training", **options)


def _assert_scores_close(ours, theirs, tolerance: float = 1e-5) -> None:
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.logit_delta == pytest.approx(other.logit_delta, abs=tolerance)
        assert mine.logprob_yes == pytest.approx(other.logprob_yes, abs=tolerance)
        assert mine.logprob_no == pytest.approx(other.logprob_no, abs=tolerance)
        assert mine.p_yes == pytest.approx(other.p_yes, abs=tolerance)


# ------------------------------------------------------------------------------------------------------
# The prompt, its ids and the scored position
# ------------------------------------------------------------------------------------------------------


def test_training_prompt_text_is_the_training_codes() -> None:
    assert build_training_prompt_text("a dog surfing") == EXPECTED_DOG_TRAINING_PROMPT


def test_training_messages_put_the_video_before_the_text() -> None:
    system, user, assistant = build_training_messages("q")
    assert system["content"][0]["text"] == TRAIN_SYSTEM
    assert [item["type"] for item in user["content"]] == ["video", "text"]
    assert user["content"][1]["text"] == "Query: q\nIs the video relevant? Answer with yes or no."
    assert assistant["content"][0]["text"] == "<answer>yes</answer>"


def test_the_chat_template_renders_the_training_prompt(tiny_loaded) -> None:
    assert render_training_prompt(tiny_loaded.processor, "a dog surfing") == EXPECTED_DOG_TRAINING_PROMPT


def test_answer_ids_are_the_training_codes(tiny_loaded) -> None:
    assert training_answer_ids(tiny_loaded.processor.tokenizer) == (YES_ID, NO_ID)


def test_golden_training_token_ids(tiny_loaded) -> None:
    processor = tiny_loaded.processor
    video_inputs = encode_video(processor, _golden_video())
    split = split_training_prompts(processor, ["a dog surfing"], video_inputs)
    assert split.prefix_ids[: len(HEAD_IDS)] == HEAD_IDS
    assert split.prefix_ids[len(HEAD_IDS) :][-1] == 151653  # the prefix ends with the last <|vision_end|>
    assert split.prefix_ids.count(151656) == 1920 and split.prefix_ids.count(151652) == 16
    # 35 head tokens, then 16 pairs of `<t seconds>` (109 tokens in all), <|vision_start|>, 120 pads, <|vision_end|>
    assert len(split.prefix_ids) == 35 + 109 + 16 * 122 == 2096
    assert split.suffix_ids == [DOG_SUFFIX_IDS]


def test_scored_position_is_the_training_collators(tiny_loaded) -> None:
    """Tokenise the whole training conversation (label and end of turn included) with the processor's own
    call, find the collator's answer position, and check that our prompt is exactly the ids up to it."""
    processor = tiny_loaded.processor
    video = _golden_video()
    for query, label in (("a dog surfing", "yes"), (LONG, "no")):
        conversation = processor.apply_chat_template(
            build_training_messages(query, label), tokenize=False, add_generation_prompt=False
        )
        assert conversation.endswith(f"<answer>{label}</answer><|im_end|>\n")
        whole = processor(
            text=[conversation.replace(TEMPLATE_VIDEO_BLOCK, VIDEO_TOKEN)],
            videos=[video.frames],
            videos_kwargs={"do_sample_frames": False, "video_metadata": [video.processor_metadata()]},
            return_tensors="pt",
        )["input_ids"][0].tolist()
        position = _collator_answer_position(processor.tokenizer, whole)
        assert whole[position + 1] == (YES_ID if label == "yes" else NO_ID)  # the label follows it
        ours = tokenize_training_prompts(processor, [query], encode_video(processor, video)).input_ids[0].tolist()
        assert ours == whole[: position + 1]


def test_the_training_score_is_the_training_objective(tiny_loaded) -> None:
    """logit[yes] - logit[no] at the collator's position, from the processor's own call and a plain forward."""
    processor = tiny_loaded.processor
    video = _golden_video()
    inputs = processor(
        text=[EXPECTED_DOG_TRAINING_PROMPT.replace(TEMPLATE_VIDEO_BLOCK, VIDEO_TOKEN)],
        videos=[video.frames],
        videos_kwargs={"do_sample_frames": False, "video_metadata": [video.processor_metadata()]},
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = tiny_loaded.model(**inputs).logits[0, -1].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    for prefix_cache in (True, False):
        (score,) = _training_scorer(tiny_loaded, prefix_cache=prefix_cache).score_video(["a dog surfing"], video)
        assert score.logit_delta == pytest.approx(float(logits[YES_ID] - logits[NO_ID]), abs=1e-5)
        assert score.logprob_yes == pytest.approx(float(logprobs[YES_ID]), abs=1e-5)
        assert score.logprob_no == pytest.approx(float(logprobs[NO_ID]), abs=1e-5)
        assert score.p_yes == pytest.approx(float(torch.sigmoid(logits[YES_ID] - logits[NO_ID])), abs=1e-6)


def test_a_query_holding_a_video_token_is_refused(tiny_loaded, make_sampled_video) -> None:
    with pytest.raises(ValueError, match="video_pad"):
        _training_scorer(tiny_loaded).score_video([f"a {VIDEO_TOKEN} b"], make_sampled_video())


# ------------------------------------------------------------------------------------------------------
# Prefix reuse equals one full pass
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def eager_loaded(tiny_model_dir):
    from rankvideo_cli.scoring.loading import load_model

    return load_model(ScorerOptions("tiny-random", device="cpu", dtype="float32", attn_implementation="eager"))


@pytest.mark.parametrize("count", [1, 2, 5, 23])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_prefix_reuse_equals_the_full_pass(tiny_loaded, eager_loaded, make_sampled_video, count, attention) -> None:
    loaded = tiny_loaded if attention == "sdpa" else eager_loaded
    video = make_sampled_video(seed=count, frames=6, total_frames=150)
    queries = [QUERIES[i % len(QUERIES)] + ("" if i < len(QUERIES) else f" variant {i}") for i in range(count)]
    full = _training_scorer(loaded, prefix_cache=False, batch_size=1).score_video(queries, video)
    reused = _training_scorer(loaded, batch_size=32).score_video(queries, video)
    _assert_scores_close(reused, full)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 7])
def test_batch_splits_do_not_change_the_scores(tiny_loaded, make_sampled_video, batch_size) -> None:
    video = make_sampled_video(seed=3, frames=4)
    queries = [*QUERIES, *(f"{query} again" for query in QUERIES)]
    whole = _training_scorer(tiny_loaded, prefix_cache=False, batch_size=1).score_video(queries, video)
    _assert_scores_close(_training_scorer(tiny_loaded, batch_size=batch_size).score_video(queries, video), whole)
    full_batched = _training_scorer(tiny_loaded, prefix_cache=False, batch_size=batch_size).score_video(queries, video)
    _assert_scores_close(full_batched, whole)


def test_a_query_scores_the_same_alone_and_packed_beside_very_different_ones(tiny_loaded, make_sampled_video) -> None:
    """No padding: the short query's score does not move when a 168-word (180-token) query shares its forward."""
    video = make_sampled_video(seed=8)
    scorer = _training_scorer(tiny_loaded, batch_size=8)
    (alone,) = scorer.score_video([SHORT], video)
    packed = scorer.score_video([LONG, SHORT, LONG + " two"], video)
    _assert_scores_close([packed[1]], [alone])


def test_out_of_memory_halves_the_suffix_batch_and_loses_no_pair(tiny_loaded, make_sampled_video, monkeypatch) -> None:
    video = make_sampled_video(seed=13)
    queries = [f"query number {i} " + "word " * i for i in range(8)]
    expected = _training_scorer(tiny_loaded, prefix_cache=False, batch_size=1).score_video(queries, video)
    scorer = _training_scorer(tiny_loaded, batch_size=8)
    original = prefix_module.suffix_logprobs
    sizes: list[int] = []

    def fits_two(model, suffixes, prefix, attention, device):
        sizes.append(len(suffixes))
        if len(suffixes) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(model, suffixes, prefix, attention, device)

    monkeypatch.setattr("rankvideo_cli.scoring.qwen3vl.suffix_logprobs", fits_two)
    scores = scorer.score_video(queries, video)
    assert sizes == [8, 4, 2, 2, 2, 2]
    assert scorer.batch_size == 2 and scorer.oom_halvings == 2
    _assert_scores_close(scores, expected)


def test_the_prefix_is_computed_once_per_video_and_never_changed(tiny_loaded, make_sampled_video, monkeypatch) -> None:
    scorer = _training_scorer(tiny_loaded, batch_size=2)
    prefixes = []
    original = prefix_module.compute_prefix

    def counting(*args, **kwargs):
        prefix = original(*args, **kwargs)
        prefixes.append((prefix, [key.clone() for key in prefix.keys], [value.clone() for value in prefix.values]))
        return prefix

    monkeypatch.setattr("rankvideo_cli.scoring.qwen3vl.compute_prefix", counting)
    scorer.score_video(QUERIES, make_sampled_video(seed=2))  # three forwards of suffixes
    assert len(prefixes) == 1
    prefix, keys, values = prefixes[0]
    assert all(torch.equal(a, b) for a, b in zip(prefix.keys, keys, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(prefix.values, values, strict=True))
    assert prefix.keys[0].shape[0] == 1  # one copy, whatever the number of queries


def test_packed_suffixes_share_one_prefix_and_see_only_their_own_tokens() -> None:
    keys = [torch.zeros(1, 2, 5, 4)]
    prefix = prefix_module.CachedPrefix(keys=keys, values=keys, length=5, next_position=9)
    packed = prefix_module.pack_suffixes([[1, 2, 3], [4], [5, 6]], prefix, "sdpa", torch.float32, torch.device("cpu"))
    assert packed.input_ids.tolist() == [[1, 2, 3, 4, 5, 6]]
    assert packed.position_ids.shape == (3, 1, 6)
    assert packed.position_ids[0, 0].tolist() == [9, 10, 11, 9, 9, 10]  # each suffix starts after the prefix
    assert packed.last_positions.tolist() == [2, 3, 5]
    mask = packed.attention_mask[0, 0]
    assert mask.shape == (6, 5 + 6) and mask[:, :5].all()  # every token sees the whole prefix, batch 1
    own = mask[:, 5:].int().tolist()
    assert own == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1, 1],
    ]
    eager = prefix_module.pack_suffixes([[1], [2]], prefix, "eager", torch.float32, torch.device("cpu"))
    assert eager.attention_mask.dtype == torch.float32
    assert float(eager.attention_mask[0, 0, 1, 5]) == torch.finfo(torch.float32).min
    assert float(eager.attention_mask[0, 0, 1, 6]) == 0.0


# Qwen3-VL-8B's architecture and vocabulary, narrower and shallower: wide enough that float32 rounding is that
# of a real forward (GQA 4:1, several layers, DeepStack), small enough for a CPU test.
LARGER = dataclasses.replace(
    QWEN3_VL_8B,
    name="larger",
    text_hidden=256,
    text_layers=4,
    text_heads=8,
    text_kv_heads=2,
    head_dim=32,
    text_intermediate=512,
    mrope_section=(8, 4, 4),
    vision_depth=2,
    vision_hidden=64,
    vision_intermediate=128,
    vision_heads=2,
    deepstack_layers=(0, 1),
    init_std=0.05,
)


@pytest.fixture(scope="module")
def larger_scorers(tiny_loaded):
    from transformers import Qwen3VLForConditionalGeneration

    torch.manual_seed(0)
    config = LARGER.config()
    config._attn_implementation = "sdpa"
    model = Qwen3VLForConditionalGeneration(config).eval()
    processor = tiny_loaded.processor  # Qwen's vocabulary and the Qwen3-VL processor

    def make(**options):
        return Qwen3VLScorer(
            model, processor, model_id="larger-random", options=ScorerOptions(prompt="training", **options)
        )

    return make


@pytest.mark.parametrize("count", [1, 3, 23])
def test_prefix_reuse_equals_the_full_pass_on_a_larger_shape(larger_scorers, make_sampled_video, count) -> None:
    video = make_sampled_video(seed=20 + count, frames=8, height=96, width=128, total_frames=200)
    queries = [QUERIES[i % len(QUERIES)] + f" {i}" for i in range(count)]
    full = larger_scorers(prefix_cache=False, batch_size=1).score_video(queries, video)
    _assert_scores_close(larger_scorers(batch_size=5).score_video(queries, video), full)


# ------------------------------------------------------------------------------------------------------
# Identity: the prompt is in the store key and the manifest; options refused before loading
# ------------------------------------------------------------------------------------------------------


def test_the_training_prompt_has_its_own_fingerprint(tiny_loaded, tiny_scorer) -> None:
    training = _training_scorer(tiny_loaded)
    assert "prompt_format" not in tiny_scorer.fingerprint()  # the inference prompt's key is as it was
    assert training.fingerprint()["prompt_format"] == "training"
    assert training.fingerprint()["prompt"] != tiny_scorer.fingerprint()["prompt"]
    assert {k: v for k, v in training.fingerprint().items() if k not in ("prompt", "prompt_format")} == {
        k: v for k, v in tiny_scorer.fingerprint().items() if k != "prompt"
    }
    # the prefix cache changes float rounding only: not part of the key, but described for the manifest
    assert _training_scorer(tiny_loaded, prefix_cache=False).fingerprint() == training.fingerprint()
    assert training.describe()["prefix_cache"] == "on"
    assert "prefix_cache" not in tiny_scorer.describe()


def test_the_predicted_fingerprint_equals_the_loaded_one(tiny_loaded) -> None:
    predicted = predict_fingerprint(ScorerOptions("tiny-random", device="cpu", dtype="float32", prompt="training"))
    assert predicted == _training_scorer(tiny_loaded).fingerprint()


def test_options_that_cannot_work_are_refused_before_loading() -> None:
    with pytest.raises(UsageError, match="score-mode"):
        check_prompt_options("training", "reference", None, True)
    with pytest.raises(UsageError, match="no-prefix-cache"):
        check_prompt_options("training", "full", "flash_attention_2", True)
    with pytest.raises(UsageError, match="--prompt"):
        check_prompt_options("pretraining", "full", None, True)
    assert check_prompt_options("training", "full", None, True) == "sdpa"  # never flash by default
    assert check_prompt_options("training", "full", "flash_attention_2", False) == "flash_attention_2"
    assert check_prompt_options("inference", "reference", None, True) is None


def test_the_scorer_refuses_what_loading_refuses(tiny_loaded) -> None:
    """One check serves both: a ValueError to a library caller, a one-line UsageError on the command line."""
    with pytest.raises(ValueError, match="score-mode") as refused:
        _training_scorer(tiny_loaded, score_mode="reference")
    assert isinstance(refused.value, UsageError)
    with pytest.raises(ValueError, match="--prompt"):
        Qwen3VLScorer.from_loaded(tiny_loaded, prompt="pretraining")
    flash = dataclasses.replace(tiny_loaded, attn_implementation="flash_attention_2")
    with pytest.raises(ValueError, match="no-prefix-cache"):
        _training_scorer(flash)


# ------------------------------------------------------------------------------------------------------
# Memory
# ------------------------------------------------------------------------------------------------------


def test_the_8b_prefix_cache_is_about_310_mb() -> None:
    assert prefix_cache_bytes(2100, QWEN3_VL_8B, torch.bfloat16) == 36 * 2 * 8 * 128 * 2100 * 2
    assert 300e6 < prefix_cache_bytes(2100, QWEN3_VL_8B, torch.bfloat16) < 320e6


def test_suffix_batches_grow_with_free_memory_and_stay_bounded() -> None:
    sizes = [auto_suffix_batch_size(gib * GIB, 2432, QWEN3_VL_8B, torch.bfloat16) for gib in (4, 20, 40, 120)]
    assert sizes == sorted(sizes) and sizes[0] == 1 and sizes[-1] == MAX_AUTO_SUFFIX_BATCH
    assert _cpu_default_for_the_prefix_cache() == CPU_SUFFIX_BATCH_SIZE


def _cpu_default_for_the_prefix_cache() -> int:
    from rankvideo_cli.scoring.memory import default_batch_size

    return default_batch_size(None, torch.device("cpu"), torch.float32, prefix_cache=True)
