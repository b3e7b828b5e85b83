"""Qwen3VLScorer on the tiny random model: the score itself, batching, the shared vision pass, OOM halving."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import golden_size_video

from rankvideo_cli.scoring.answers import answer_token_ids
from rankvideo_cli.scoring.base import PairScore, Scorer
from rankvideo_cli.scoring.prompt import TEMPLATE_VIDEO_BLOCK, VIDEO_TOKEN, build_prompt_text, prepare_inputs
from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
from rankvideo_cli.videos.frames import SampledVideo

# REFERENCE.md section 5, from Qwen's vocabulary.
YES_IDS = [7414, 9454, 9693, 9834, 14004, 14080]
NO_IDS = [902, 2152, 2308, 2753, 5664, 8996, 72104]
QUERIES = [
    "a dog surfing",
    "two people crossing a street at night in the rain near a river",
    "fire",
    "a news anchor speaking in a busy market filmed from a drone",
    "a small boat",
]


def independent_score(loaded, query: str, video: SampledVideo) -> tuple[float, float]:
    """logprob_yes, logprob_no from scratch: the processor's own call, a plain forward, full logits."""
    text = build_prompt_text(query).replace(TEMPLATE_VIDEO_BLOCK, VIDEO_TOKEN)
    inputs = loaded.processor(
        text=[text],
        videos=[video.frames],
        videos_kwargs={"do_sample_frames": False, "video_metadata": [video.processor_metadata()]},
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = loaded.model(**inputs).logits
    logprobs = torch.log_softmax(logits[0, -1].float(), dim=-1)
    return float(torch.logsumexp(logprobs[YES_IDS], 0)), float(torch.logsumexp(logprobs[NO_IDS], 0))


def test_yes_no_ids_are_the_references(tiny_loaded) -> None:
    assert answer_token_ids(tiny_loaded.processor.tokenizer) == (YES_IDS, NO_IDS)


def test_scorer_is_a_scorer(tiny_scorer) -> None:
    assert isinstance(tiny_scorer, Scorer)


def test_score_equals_an_independent_computation_at_the_golden_size(tiny_loaded, tiny_scorer) -> None:
    video = golden_size_video(11)
    (score,) = tiny_scorer.score_video(["a dog surfing"], video)
    logprob_yes, logprob_no = independent_score(tiny_loaded, "a dog surfing", video)
    assert score.logprob_yes == pytest.approx(logprob_yes, abs=1e-5)
    assert score.logprob_no == pytest.approx(logprob_no, abs=1e-5)
    assert score.logit_delta == pytest.approx(logprob_yes - logprob_no, abs=1e-5)
    assert score.p_yes == pytest.approx(1 / (1 + math.exp(-(logprob_yes - logprob_no))), abs=1e-6)


def test_scores_equal_independent_computation_for_several_queries(tiny_loaded, tiny_scorer, make_sampled_video) -> None:
    video = make_sampled_video(seed=5, frames=6, total_frames=150)
    queries = QUERIES[:3]
    scores = tiny_scorer.score_video(queries, video)
    for query, score in zip(queries, scores, strict=True):
        logprob_yes, logprob_no = independent_score(tiny_loaded, query, video)
        assert score.logprob_yes == pytest.approx(logprob_yes, abs=1e-5)
        assert score.logprob_no == pytest.approx(logprob_no, abs=1e-5)
    # the inputs matter: a tiny random model still gives clearly different scores
    assert max(s.logit_delta for s in scores) - min(s.logit_delta for s in scores) > 0.1


def test_batched_and_single_agree(tiny_loaded, make_sampled_video) -> None:
    video = make_sampled_video(seed=6, frames=4)
    batched = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=len(QUERIES)).score_video(QUERIES, video)
    single = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=1).score_video(QUERIES, video)
    for one, many in zip(single, batched, strict=True):
        assert many.logprob_yes == pytest.approx(one.logprob_yes, abs=1e-4)
        assert many.logprob_no == pytest.approx(one.logprob_no, abs=1e-4)
        assert many.logit_delta == pytest.approx(one.logit_delta, abs=1e-4)


def _uncached_scores(loaded, queries: list[str], video: SampledVideo) -> list[PairScore]:
    """A plain forward with B copies of the pixels: the vision tower runs on every copy."""
    inputs = prepare_inputs(loaded.processor, queries, video)
    with torch.no_grad():
        logits = loaded.model(**inputs, logits_to_keep=1).logits[:, -1].float()
    return [
        PairScore.from_logprobs(float(torch.logsumexp(row[YES_IDS], 0)), float(torch.logsumexp(row[NO_IDS], 0)))
        for row in torch.log_softmax(logits, dim=-1)
    ]


def test_cached_vision_pass_is_identical_to_the_uncached_forward(tiny_loaded, tiny_scorer, make_sampled_video) -> None:
    video = make_sampled_video(seed=7, frames=4)
    assert tiny_scorer.score_video(["a dog surfing"], video) == _uncached_scores(tiny_loaded, ["a dog surfing"], video)
    # B copies through the vision tower in one pass, against one pass shared by B rows (padded at their end
    # without a mask here, at their start with one there: float32 rounding apart, a few units in the last place)
    queries = QUERIES[:3]
    for ours, theirs in zip(
        tiny_scorer.score_video(queries, video), _uncached_scores(tiny_loaded, queries, video), strict=True
    ):
        assert ours.logprob_yes == pytest.approx(theirs.logprob_yes, rel=1e-6)
        assert ours.logprob_no == pytest.approx(theirs.logprob_no, rel=1e-6)


def _count_calls(module: torch.nn.Module) -> list[int]:
    calls = [0]

    def hook(*_: object) -> None:
        calls[0] += 1

    module.register_forward_hook(hook)
    return calls


def test_vision_tower_runs_once_per_video(tiny_loaded, make_sampled_video) -> None:
    scorer = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=2)  # 5 queries -> 3 forwards
    video_a, video_b = make_sampled_video(seed=8), make_sampled_video(seed=9)
    handle_calls = _count_calls(tiny_loaded.model.model.visual)
    language_calls = _count_calls(tiny_loaded.model.model.language_model)
    try:
        scorer.score_video(QUERIES, video_a)
        assert handle_calls[0] == 1
        assert language_calls[0] == 3
        pairs = [(QUERIES[0], video_a), (QUERIES[1], video_b), (QUERIES[2], video_a), (QUERIES[3], video_b)]
        scores = scorer.score_pairs(pairs)
        assert handle_calls[0] == 3  # one more pass per video
        separately = scorer.score_video([QUERIES[1], QUERIES[3]], video_b)
        assert [scores[1], scores[3]] == separately
    finally:
        tiny_loaded.model.model.visual._forward_hooks.clear()
        tiny_loaded.model.model.language_model._forward_hooks.clear()


def test_video_pixels_are_processed_once_per_video(tiny_loaded, make_sampled_video, monkeypatch) -> None:
    scorer = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=2)
    video_processor = tiny_loaded.processor.video_processor
    calls = []
    original = type(video_processor).__call__

    def counting(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(video_processor), "__call__", counting)
    scorer.score_video(QUERIES, make_sampled_video(seed=10))
    assert len(calls) == 1


def test_duplicate_and_empty_queries(tiny_scorer, make_sampled_video) -> None:
    video = make_sampled_video(seed=12)
    assert tiny_scorer.score_video([], video) == []
    scores = tiny_scorer.score_video(["fire", "a dog", "fire"], video)
    assert scores[0] == scores[2] and scores[0] != scores[1]


def test_out_of_memory_halves_the_batch_and_loses_no_pair(tiny_loaded, make_sampled_video, monkeypatch) -> None:
    video = make_sampled_video(seed=13)
    queries = [f"query number {i}" for i in range(8)]
    expected = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=8).score_video(queries, video)

    scorer = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=8)
    original = scorer.answer_scores
    batch_rows: list[int] = []

    def fits_two(batch, video_inputs, features):
        rows = batch.input_ids.shape[0]
        batch_rows.append(rows)
        if rows > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(batch, video_inputs, features)

    monkeypatch.setattr(scorer, "answer_scores", fits_two)
    scores = scorer.score_video(queries, video)
    assert batch_rows == [8, 4, 2, 2, 2, 2]  # 8 fails, 4 fails, then 2+2+2+2
    assert scorer.batch_size == 2 and scorer.oom_halvings == 2
    for ours, theirs in zip(scores, expected, strict=True):
        assert ours.logit_delta == pytest.approx(theirs.logit_delta, abs=1e-4)


def test_out_of_memory_on_a_single_pair_is_raised(tiny_loaded, make_sampled_video, monkeypatch) -> None:
    scorer = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=1)

    def never_fits(*_: object) -> list:
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(scorer, "answer_scores", never_fits)
    with pytest.raises(torch.OutOfMemoryError):
        scorer.score_video(["a dog"], make_sampled_video())


def test_other_errors_are_not_retried(tiny_loaded, make_sampled_video, monkeypatch) -> None:
    scorer = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=4)
    calls = []

    def broken(*_: object) -> list:
        calls.append(1)
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(scorer, "answer_scores", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        scorer.score_video(["a", "b"], make_sampled_video())
    assert len(calls) == 1 and scorer.batch_size == 4


def test_fingerprint(tiny_loaded, tiny_scorer) -> None:
    fingerprint = tiny_scorer.fingerprint()
    assert set(fingerprint) == {
        "scorer",
        "model",
        "revision",
        "dtype",
        "attn_implementation",
        "score_mode",
        "prompt",
    }
    assert fingerprint["model"] == "tiny-random"
    assert fingerprint["revision"] == "tiny-random-v1"
    assert fingerprint["dtype"] == "float32"
    assert fingerprint["attn_implementation"] == "sdpa"
    assert fingerprint["score_mode"] == "full"
    assert all(isinstance(value, str) for value in fingerprint.values())
    other = Qwen3VLScorer.from_loaded(tiny_loaded, score_mode="reference", batch_size=3).fingerprint()
    assert other == {**fingerprint, "score_mode": "reference"}  # batch size is not part of the key
    assert tiny_scorer.describe()["device"] == "cpu"


def test_invalid_settings_are_refused(tiny_loaded) -> None:
    with pytest.raises(ValueError, match="score_mode"):
        Qwen3VLScorer.from_loaded(tiny_loaded, score_mode="fast")
    with pytest.raises(ValueError, match="batch_size"):
        Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=0)


# ----------------------------------------------------------------------------------------------------
# score_mode="reference": vLLM's top-512 log-probs
# ----------------------------------------------------------------------------------------------------

VOCAB = 151936
FILLER_IDS = list(range(100_000, 100_600))  # 600 ids that crowd the top-512 unless an answer id beats them


def crafted_logprobs(answer_logits: dict[int, float], filler_logit: float = 5.0) -> torch.Tensor:
    logits = torch.full((VOCAB,), -10.0)
    logits[FILLER_IDS] = filler_logit
    for token_id, value in answer_logits.items():
        logits[token_id] = value
    return torch.log_softmax(logits, dim=-1)[None]


def _lse(values: list[float]) -> float:
    return float(torch.logsumexp(torch.tensor(values, dtype=torch.float64), 0))


def test_reference_mode_equals_full_when_every_answer_id_is_in_the_top_512() -> None:
    from rankvideo_cli.scoring.answers import full_scores, reference_scores

    logprobs = crafted_logprobs({**dict.fromkeys(YES_IDS, 8.0), **dict.fromkeys(NO_IDS, 7.0)})
    (reference,) = reference_scores(logprobs, YES_IDS, NO_IDS)
    (full,) = full_scores(logprobs, YES_IDS, NO_IDS)
    assert reference.logit_delta == pytest.approx(full.logit_delta, abs=1e-5)
    assert reference.logprob_yes == pytest.approx(full.logprob_yes, abs=1e-5)


def test_reference_mode_drops_answer_ids_outside_the_top_512() -> None:
    from rankvideo_cli.scoring.answers import reference_scores

    # two yes ids beat the 600 fillers, the other four sit below them; every no id beats them
    answer_logits = {7414: 9.0, 9693: 8.5, 9454: 1.0, 9834: 1.0, 14004: 1.0, 14080: 1.0}
    answer_logits.update(dict.fromkeys(NO_IDS, 7.0))
    logprobs = crafted_logprobs(answer_logits)
    (score,) = reference_scores(logprobs, YES_IDS, NO_IDS)
    row = logprobs[0].double()
    assert score.logprob_yes == pytest.approx(_lse([float(row[7414]), float(row[9693])]), abs=1e-6)
    assert score.logprob_yes < float(torch.logsumexp(row[YES_IDS], 0))  # the full sum is larger
    assert score.logprob_no == pytest.approx(_lse([float(row[i]) for i in NO_IDS]), abs=1e-6)


def test_reference_mode_gives_all_zeros_when_one_side_is_missing() -> None:
    from rankvideo_cli.scoring.answers import reference_scores

    # every yes id below the fillers (the greedy answer, a no id, is visible: it changes nothing)
    logprobs = crafted_logprobs({**dict.fromkeys(YES_IDS, 1.0), **dict.fromkeys(NO_IDS, 7.0)})
    (score,) = reference_scores(logprobs, YES_IDS, NO_IDS)
    assert score == PairScore(logit_delta=0.0, p_yes=0.0, logprob_yes=0.0, logprob_no=0.0)
    # and no answer id visible at all
    logprobs = crafted_logprobs({**dict.fromkeys(YES_IDS, 1.0), **dict.fromkeys(NO_IDS, 2.0)})
    assert reference_scores(logprobs, YES_IDS, NO_IDS)[0].to_dict() == dict.fromkeys(
        ("logit_delta_yes_minus_no", "logit_delta", "p_yes", "logprob_yes", "logprob_no"), 0.0
    )


def test_reference_mode_through_the_scorer(tiny_loaded, make_sampled_video) -> None:
    scorer = Qwen3VLScorer.from_loaded(tiny_loaded, score_mode="reference")
    video = make_sampled_video(seed=14)
    queries = QUERIES[:3]
    scores = scorer.score_video(queries, video)
    inputs = prepare_inputs(tiny_loaded.processor, queries, video)
    with torch.no_grad():
        logits = tiny_loaded.model(**inputs, logits_to_keep=1).logits[:, -1].float()
    for row, score in zip(torch.log_softmax(logits, dim=-1), scores, strict=True):
        top = set(row.topk(512).indices.tolist())
        yes = [float(row[i]) for i in YES_IDS if i in top]
        no = [float(row[i]) for i in NO_IDS if i in top]
        if yes and no:
            assert score.logprob_yes == pytest.approx(_lse(yes), abs=1e-5)
            assert score.logprob_no == pytest.approx(_lse(no), abs=1e-5)
        else:
            assert score == PairScore(0.0, 0.0, 0.0, 0.0)


def test_a_different_chat_template_is_used_with_a_warning(tiny_loaded, capfd) -> None:
    import copy

    processor = copy.copy(tiny_loaded.processor)
    processor.chat_template = tiny_loaded.processor.chat_template.replace(
        "'<|im_start|>assistant\\n'", "'<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n'"
    )
    scorer = Qwen3VLScorer(tiny_loaded.model, processor, model_id="thinking-style")
    assert "thinking-style's chat template renders the RankVideo prompt differently" in capfd.readouterr().err
    reference = Qwen3VLScorer.from_loaded(tiny_loaded)
    assert scorer.fingerprint()["prompt"] != reference.fingerprint()["prompt"]
