"""rankvideo_cli/scoring/generate.py, the model's full answer, as the reference's `generate_batch`, on tiny-random:
the prompt ids are the scoring prompt's, one vision pass is shared and gives the tokens of the plain pixel path,
greedy decoding is deterministic, generation stops at `<|im_end|>` and respects `max_new_tokens` (`rankvideo
explain`, which prints it: test_cli_explain.py).
"""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import SAMPLE

from rankvideo_cli.errors import UsageError
from rankvideo_cli.scoring.generate import (
    LENGTH,
    STOPPED,
    GenerationSettings,
    explain_video,
    generate_for_video,
    stop_token_ids,
)
from rankvideo_cli.scoring.prompt import encode_video, prepare_inputs, tokenize_prompts
from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
from rankvideo_cli.scoring.reranker import VLMReranker
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.frames import sample_video

VIDEO = SAMPLE / "videos" / "v001.mp4"
QUERIES = ["a red ball", "a blue square moving to the right"]


@pytest.fixture(scope="module")
def sampled():
    return sample_video(VIDEO, SamplingConfig())


class GenerateSpy:
    """Records the keyword arguments of every `model.generate` call, then makes it."""

    def __init__(self, model) -> None:
        self.model, self.real, self.calls = model, model.generate, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.real(**kwargs)


def test_the_prompt_is_the_scoring_prompt_and_one_vision_pass_serves_every_query(tiny_scorer, sampled, monkeypatch):
    spy = GenerateSpy(tiny_scorer.model)
    monkeypatch.setattr(tiny_scorer.model, "generate", spy)
    vision_passes = []
    real_vision = tiny_scorer.vision_features
    monkeypatch.setattr(tiny_scorer, "vision_features", lambda inputs: vision_passes.append(1) or real_vision(inputs))
    generate_for_video(tiny_scorer, QUERIES, sampled, GenerationSettings(max_new_tokens=4))
    (call,) = spy.calls
    expected = tokenize_prompts(tiny_scorer.processor, QUERIES, encode_video(tiny_scorer.processor, sampled))
    assert torch.equal(call["input_ids"], expected.input_ids)
    assert torch.equal(call["attention_mask"], expected.attention_mask)
    assert "pixel_values_videos" not in call  # the vision tower's output is passed, not the pixels
    assert len(vision_passes) == 1
    assert call["do_sample"] is False and call["temperature"] is None


def test_greedy_generation_is_deterministic_and_equals_the_pixel_path(tiny_scorer, sampled):
    settings = GenerationSettings(max_new_tokens=12)
    first = generate_for_video(tiny_scorer, QUERIES, sampled, settings)
    assert first == generate_for_video(tiny_scorer, QUERIES, sampled, settings)
    inputs = prepare_inputs(tiny_scorer.processor, QUERIES, sampled)  # the processor's own path, pixels per row
    tokenizer = tiny_scorer.processor.tokenizer
    with torch.inference_mode():
        plain = tiny_scorer.model.generate(
            **inputs, max_new_tokens=12, do_sample=False, eos_token_id=stop_token_ids(tiny_scorer)
        )
    texts = [tokenizer.decode(row, skip_special_tokens=True) for row in plain[:, inputs["input_ids"].shape[1] :]]
    assert [answer.text for answer in first] == texts


def test_max_new_tokens_is_respected(tiny_scorer, sampled):
    for limit in (1, 5):
        answers = generate_for_video(tiny_scorer, QUERIES, sampled, GenerationSettings(max_new_tokens=limit))
        assert [(answer.tokens, answer.finish_reason) for answer in answers] == [(limit, LENGTH)] * 2


def test_generation_stops_at_the_end_of_the_turn(tiny_loaded, sampled):
    """A copy of the model whose LM head swaps the rows of its first greedy token and `<|im_end|>`: its first
    step now says `<|im_end|>` (the prompt is unchanged: the head is not tied to the embeddings)."""
    scorer = Qwen3VLScorer.from_loaded(tiny_loaded)
    (answer,) = generate_for_video(scorer, QUERIES[:1], sampled, GenerationSettings(max_new_tokens=3))
    first_token = scorer.processor.tokenizer(answer.text, add_special_tokens=False)["input_ids"][0]
    swapped = copy.deepcopy(tiny_loaded.model)
    assert swapped.lm_head.weight.data_ptr() != swapped.get_input_embeddings().weight.data_ptr()  # not tied
    end = scorer.processor.tokenizer.convert_tokens_to_ids("<|im_end|>")
    weight = swapped.lm_head.weight.data
    weight[[first_token, end]] = weight[[end, first_token]]
    stopping = Qwen3VLScorer(swapped, tiny_loaded.processor, model_id="tiny-random")
    (stopped,) = generate_for_video(stopping, QUERIES[:1], sampled, GenerationSettings(max_new_tokens=50))
    assert (stopped.text, stopped.tokens, stopped.finish_reason) == ("", 1, STOPPED)


def test_sampling_is_reproducible_under_a_seed(tiny_scorer, sampled):
    settings = GenerationSettings(max_new_tokens=8, temperature=1.5, top_k=50, seed=7)
    once = generate_for_video(tiny_scorer, QUERIES, sampled, settings)
    assert once == generate_for_video(tiny_scorer, QUERIES, sampled, settings)
    assert settings.describe() == {"greedy": False, "max_new_tokens": 8, "temperature": 1.5, "top_k": 50, "seed": 7}


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"max_new_tokens": 0}, "max_new_tokens must be at least 1"),
        ({"temperature": 0.0}, "temperature must be above 0"),
        ({"top_p": 0.9}, "give a temperature too"),
        ({"seed": 1}, "give a temperature too"),
        ({"temperature": 1.0, "top_p": 1.5}, "top_p must be in"),
        ({"temperature": 1.0, "top_k": 0}, "top_k must be at least 1"),
    ],
)
def test_bad_generation_settings_are_refused(kwargs, said):
    with pytest.raises(UsageError, match=said):
        GenerationSettings(**kwargs)


def test_the_explanation_comes_with_the_pair_score(tiny_scorer, sampled):
    explained = explain_video(tiny_scorer, QUERIES, sampled, GenerationSettings(max_new_tokens=4))
    assert [score for score, _answer in explained] == tiny_scorer.score_video(QUERIES, sampled)


def test_generate_batch_as_the_reference_names_it(tiny_scorer, sampled):
    reranker = VLMReranker.from_scorer(tiny_scorer)
    videos = [str(VIDEO), str(SAMPLE / "videos" / "v002.mp4"), str(VIDEO)]
    texts = reranker.generate_batch(queries=[QUERIES[0], QUERIES[0], QUERIES[1]], video_paths=videos, max_new_tokens=6)
    expected = [answer.text for answer in generate_for_video(tiny_scorer, QUERIES, sampled, GenerationSettings(6))]
    assert [texts[0], texts[2]] == expected
    assert isinstance(texts[1], str) and texts[1] != texts[0]
    with pytest.raises(UsageError, match="they are pairs"):
        reranker.generate_batch(queries=QUERIES, video_paths=videos)
