"""The dry run's predicted GPU time: the analytic floors of benchmarks/README.md's plan, by reranker, model size
(read from config.json) and queries per video, for the GPUs the floor's assumed rate stands for; no prediction
(and why) for any other GPU or an unknown size."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rankvideo_cli.scoring.throughput import model_size, predict


def write_config(directory: Path, hidden_size: int, layers: int) -> Path:
    directory.mkdir()
    config = {"model_type": "qwen3_vl", "text_config": {"hidden_size": hidden_size, "num_hidden_layers": layers}}
    (directory / "config.json").write_text(json.dumps(config))
    return directory


def test_the_size_is_read_from_the_text_models_shape(tmp_path: Path, tiny_model_dir: Path) -> None:
    assert model_size(write_config(tmp_path / "8b", 4096, 36)) == "8B"
    assert model_size(write_config(tmp_path / "2b", 2048, 28)) == "2B"
    assert model_size(tiny_model_dir) is None
    assert model_size(tmp_path / "missing") is None
    assert model_size(None) is None


def test_a_model_not_on_this_machine_has_the_size_of_its_hub_id(tmp_path: Path) -> None:
    assert model_size(None, "hltcoe/RankVideo") == "8B"
    assert model_size(None, "Qwen/Qwen3-VL-Reranker-2B") == "2B"
    assert model_size(None, "someone/else") is None
    assert model_size(write_config(tmp_path / "2b", 2048, 28), "hltcoe/RankVideo") == "2B"  # the files decide


@pytest.mark.parametrize(
    ("reranker", "size", "queries_per_video", "pairs_per_second"),
    [
        ("rankvideo", "8B", 2.5, 22.7),  # MultiVENT's ~2.5 queries per video: the 2.3 row
        ("rankvideo", "8B", 1.0, 20.3),
        ("rankvideo", "8B", 40.0, 24.5),
        ("qwen3-vl-reranker", "2B", 3.0, 21.8),
        ("qwen3-vl-reranker", "8B", 9.0, 6.5),
    ],
)
def test_a_known_gpu_gets_the_floor_of_the_nearest_row(
    reranker: str, size: str, queries_per_video: float, pairs_per_second: float
) -> None:
    prediction = predict(10_000, queries_per_video, reranker, size, "NVIDIA H100 80GB HBM3")
    assert prediction.pairs_per_second == pairs_per_second
    assert prediction.seconds == pytest.approx(10_000 / pairs_per_second)
    assert prediction.basis.startswith("PREDICTED, not measured") and "H100" in prediction.basis


def test_without_a_gpu_the_prediction_is_for_the_known_gpus() -> None:
    prediction = predict(2_500_000, 2.5, "rankvideo", "8B", None)
    assert prediction.seconds == pytest.approx(2_500_000 / 22.7)
    assert "H100/H200" in prediction.basis


def test_an_unknown_gpu_or_size_gets_no_prediction_and_says_why() -> None:
    other_gpu = predict(100, 2.5, "rankvideo", "8B", "NVIDIA A100-SXM4-80GB")
    assert (
        other_gpu.seconds is None and other_gpu.basis == "no prediction for NVIDIA A100-SXM4-80GB (known: H100, H200)"
    )
    unknown_size = predict(100, 2.5, "rankvideo", None, "NVIDIA H200")
    assert unknown_size.seconds is None and unknown_size.basis == "no prediction for rankvideo at size unknown"


def test_nothing_to_score_takes_no_time() -> None:
    assert predict(0, 1.0, "rankvideo", None, "anything").as_dict() == {
        "pairs": 0,
        "seconds": 0.0,
        "pairs_per_second": None,
        "basis": "nothing to score",
    }
