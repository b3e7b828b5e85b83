"""benchmarks/pipeline.py: the --smoke configuration end to end (structure and score agreement; speed is
never asserted here: the ratio is measured and recorded in benchmarks/README.md, not tested)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

from rankvideo_cli.scoring.base import PairScore

REPO = Path(__file__).resolve().parents[1]
BENCHMARK = REPO / "benchmarks" / "pipeline.py"


def _load_benchmark() -> ModuleType:
    # not named "pipeline": that would shadow nothing today, but reads like rankvideo_cli.pipeline.score
    spec = importlib.util.spec_from_file_location("pipeline_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


pb = _load_benchmark()


@pytest.fixture(scope="module")
def smoke(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`pipeline.py --smoke --json ...` in-process (the tiny model comes from the session cache)."""
    work = tmp_path_factory.mktemp("pipeline-benchmark")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exit_code = pb.main(["--smoke", "--cache-dir", str(work / "clips"), "--json", str(work / "report.json")])
    assert exit_code == 0
    return {"report": json.loads((work / "report.json").read_text()), "stdout": stdout.getvalue()}


def test_smoke_report_structure(smoke: dict) -> None:
    report = smoke["report"]
    assert report["options"]["smoke"] is True
    assert report["pairs"] == 6 and report["queries_per_video"] == 3
    assert len(report["videos"]) == 2
    for video in report["videos"]:
        assert video["sampled_frames"] >= 4 and video["sampled_frames"] % 2 == 0
        assert video["video_tokens"] > 0
    assert report["videos"][0]["name"].startswith("carphone_distorted.mp4")  # a real clip, not only synthesized
    assert report["model"]["model"] == "tiny-random" and report["model"]["dtype"] == "float32"
    assert {"cpu", "cores", "torch", "transformers", "pyav"} <= set(report["machine"])
    assert report["decode_workers"] >= 1
    assert report["ways"] == ["reference", "reference_last_position", "pipeline"]
    (record,) = report["rounds"]
    seconds = record["seconds"]
    for name in ("reference", "reference_last_position"):
        # each reference way decodes for every pair and scores every pair; both are measured, nothing invented
        assert seconds[name]["decode"] > 0 and seconds[name]["scoring"] > 0
        assert seconds[name]["wall"] >= seconds[name]["decode"] + seconds[name]["scoring"] - 1e-6
        assert record["ratio"][name] == pytest.approx(seconds[name]["wall"] / seconds["pipeline"]["wall"])
        assert report["ratio"][name] == record["ratio"][name]
    pipeline = seconds["pipeline"]
    assert pipeline["wall"] > 0 and pipeline["decode_threads"] > 0 and pipeline["scoring"] > 0
    for name, per_s in record["pairs_per_s"].items():
        assert per_s == pytest.approx(6 / seconds[name]["wall"])
    assert report["pairs_per_s"] == record["pairs_per_s"]


def test_smoke_scores_agree(smoke: dict) -> None:
    agreements = smoke["report"]["agreement"]
    assert set(agreements) == {"reference", "reference_last_position"}
    for agreement in agreements.values():
        assert agreement["pairs"] == 6
        for field in ("logit_delta", "p_yes", "logprob_yes", "logprob_no"):
            assert agreement[f"max_abs_{field}"] < 1e-4, field
        # the comparison has teeth: the scores differ across pairs far more than the tolerance
        assert agreement["reference_logit_delta_spread"] > 1e-2


def test_smoke_prints_the_summary(smoke: dict) -> None:
    out = smoke["stdout"]
    assert out.startswith("machine: ")
    assert "6 pairs: 2 videos x 3 queries per video" in out
    assert "ratio pipeline / reference way: " in out
    assert "ratio pipeline / reference way, last-position logits: " in out
    assert "pipeline vs reference way over 6 pairs: max |d logit_delta|" in out


def _score(delta: float) -> PairScore:
    return PairScore.from_logprobs(-1.0 + delta, -1.0)


def test_agreement_compares_the_same_pairs() -> None:
    reference = {("q1", "v1"): _score(0.5), ("q2", "v1"): _score(-0.5)}
    nearly = {("q2", "v1"): _score(-0.5), ("q1", "v1"): _score(0.5 + 3e-7)}  # order does not matter
    deltas = pb.agreement(nearly, reference)
    assert deltas["pairs"] == 2
    assert deltas["max_abs_logit_delta"] == pytest.approx(3e-7, abs=1e-9)
    with pytest.raises(AssertionError, match="scored 1 pairs"):
        pb.agreement({("q1", "v1"): _score(0.5)}, reference)


def test_arguments() -> None:
    options, args = pb.parse_args(["--smoke"])
    assert (options.videos, options.queries_per_video, options.smoke) == (2, 3, True)
    assert args.json is None
    options, _ = pb.parse_args([])
    assert (options.videos, options.queries_per_video, options.rounds, options.last_position) == (6, 10, 1, True)
    assert pb.parse_args(["--no-last-position"])[0].last_position is False
    with pytest.raises(ValueError, match="--videos"):
        pb.run_benchmark(pb.Options(videos=len(pb.VIDEO_SOURCES) + 1))
