"""rankvideo_cli/evaluation/fusion.py, the interpolation sweep: per-query values equal evaluating the run `rerank`
writes, folds choose on the other folds only, the cross-validated run scores exactly the cross-validated measure,
and model score files are read strictly (the `tune` command around it: test_cli_tune.py)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from rankvideo_cli.errors import InputError, UsageError
from rankvideo_cli.evaluation.fusion import (
    FusionConfig,
    SweepOptions,
    cross_validated_run,
    grid,
    parse_alphas,
    read_model_scores,
    sweep,
)
from rankvideo_cli.evaluation.measures import evaluate
from rankvideo_cli.evaluation.ranking import rerank
from rankvideo_cli.io.runs import format_trec_lines, read_run


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """12 queries x 30 candidates, depth 20, model scores for most of the head, graded qrels."""
    rng = random.Random(7)
    lines, model, qrels = {}, {}, {}
    for number in range(12):
        qid = f"q{number:02d}"
        docs = [f"d{index:03d}" for index in rng.sample(range(200), 30)]
        lines[qid] = [(docid, round(10 - position * 0.25, 2)) for position, docid in enumerate(docs)]
        for docid, _ in lines[qid][:20]:
            if rng.random() < 0.9:
                model[(qid, docid)] = rng.gauss(0, 3)
        qrels[qid] = {docid: rng.choice((0, 1, 1, 2)) for docid in rng.sample(docs, 8)}
    qrels["q99"] = {"d000": 1}  # judged, never retrieved: counts as zero in every configuration
    path = tmp_path_factory.mktemp("fusion") / "run.trec"
    path.write_text(format_trec_lines(lines, "first"))
    return read_run(path), model, qrels


@pytest.mark.parametrize("measure", ["nDCG@10", "AP", "R@25"])
def test_sweep_values_equal_evaluating_the_written_run(synthetic, measure: str) -> None:
    run, model, qrels = synthetic
    options = SweepOptions(measure, alphas=[0, 0.3, 1], normalizations=["minmax", "zscore"], depth=20, folds=3)
    result = sweep(run, model, qrels, options)
    for config in result.configs:
        ranked = rerank(run, model, depth=20, interpolate=config.alpha, normalization=config.normalization)
        direct = evaluate(ranked, qrels, [measure]).runs[0]
        assert result.per_query[config] == {qid: direct.per_query.at[qid, measure] for qid in sorted(qrels)}
        assert result.per_query[config]["q99"] == 0.0


def test_folds_choose_on_the_other_folds_and_the_written_run_scores_the_cv_value(synthetic) -> None:
    run, model, qrels = synthetic
    options = SweepOptions(alphas=parse_alphas("0:1:0.1"), depth=20, folds=4, seed=3)
    result = sweep(run, model, qrels, options)
    assert sorted(qid for fold in result.folds for qid in fold.test_queries) == sorted(qrels)
    for fold in result.folds:
        train = [qid for qid in qrels if qid not in fold.test_queries]
        means = {c: sum(result.per_query[c][q] for q in train) / len(train) for c in result.configs}
        best = max(means.values())
        assert fold.chosen == next(c for c in result.configs if means[c] == best)  # first of the best, grid order
    held_out = [result.per_query[fold.chosen][qid] for fold in result.folds for qid in fold.test_queries]
    assert result.cross_validated == pytest.approx(sum(held_out) / len(held_out), abs=1e-15)
    written = cross_validated_run(run, model, result, depth=20)
    assert evaluate(written, qrels, ["nDCG@10"]).runs[0].aggregate["nDCG@10"] == pytest.approx(
        result.cross_validated, abs=1e-12
    )
    again = sweep(run, model, qrels, options)
    assert [fold.chosen for fold in again.folds] == [fold.chosen for fold in result.folds]


def test_grid_and_alpha_parsing() -> None:
    assert parse_alphas("0:1:0.25") == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(parse_alphas("0:1:0.1")) == 11
    assert parse_alphas("1,0.5") == [1.0, 0.5]
    assert grid([1, 0.5, 0.5], ["zscore"]) == [FusionConfig(0.5, "zscore"), FusionConfig(1.0, "zscore")]
    for bad in ("a,b", "0:1:0", "0:1"):
        with pytest.raises(UsageError):
            parse_alphas(bad)
    with pytest.raises(UsageError):
        grid([1.5], ["minmax"])
    with pytest.raises(UsageError):
        grid([0.5], ["softmax"])


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ('{"qid": "q1", "docid": "a"}', "logit_delta"),
        ('{"qid": "q1", "docid": "a", "logit_delta": "x"}', "finite number"),
        ('{"qid": "q1", "docid": "b", "logit_delta": 1.0}', "duplicate"),
        ('{"qid": "q1", "docid": "a", "logit_delta": 1.0, "logit_delta": 9.0}', "key 'logit_delta' appears twice"),
        ('{"qid": "q1", "docid": "a", "docid": "c", "logit_delta": 1.0}', "key 'docid' appears twice"),
        ("not json", "invalid JSON"),
    ],
)
def test_score_file_errors_name_the_line(tmp_path: Path, line: str, words: str) -> None:
    path = tmp_path / "scores.jsonl"
    path.write_text('{"qid": "q1", "docid": "b", "logit_delta": 0.5}\n' + line + "\n")
    with pytest.raises(InputError, match=words) as caught:
        read_model_scores(path)
    assert caught.value.line == 2
