"""rankvideo_cli/evaluation/measures.py and the tables it is printed in (evaluation/tables.py): evaluation equals
ir-measures run directly on the same files; missing queries count as zero; the baseline comparison equals scipy's
paired t-test on the per-query values; every output format parses back."""

from __future__ import annotations

import io
import json
import math
import random
import warnings
from pathlib import Path

import ir_measures
import pandas as pd
import pytest
from helpers import SAMPLE
from rich.console import Console
from scipy import stats

from rankvideo_cli.errors import UsageError
from rankvideo_cli.evaluation.measures import (
    DEFAULT_MEASURES,
    MeasureSpec,
    check_measures,
    correct_p_values,
    evaluate,
    evaluate_runs,
    parse_measure_specs,
)
from rankvideo_cli.evaluation.student_t import paired_t_p_value, two_sided_p
from rankvideo_cli.evaluation.tables import format_p, format_report, render_table, report_frame
from rankvideo_cli.io.qrels import read_qrels
from rankvideo_cli.io.runs import format_trec_lines, read_run

FIRST_STAGE = SAMPLE / "first_stage.trec"
QRELS = SAMPLE / "qrels.txt"


def run_frame(ranked: dict[str, list[tuple[str, float]]]) -> pd.DataFrame:
    """A run as a DataFrame (query_id, doc_id, score), the shape PyTerrier's results have."""
    rows = [(qid, docid, score) for qid, docs in ranked.items() for docid, score in docs]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])


def frame_of(path: Path) -> pd.DataFrame:
    return run_frame({qid: [(c.docid, c.score) for c in cands] for qid, cands in read_run(path).items()})


@pytest.fixture(scope="module")
def other_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second run over the sample: every query's first-stage list reversed, q4 left out (judged, missing)."""
    first_stage = read_run(FIRST_STAGE)
    ranked = {
        qid: [(c.docid, float(position)) for position, c in enumerate(candidates)]
        for qid, candidates in first_stage.items()
        if qid != "q4"
    }
    path = tmp_path_factory.mktemp("runs") / "reversed.trec"
    path.write_text(format_trec_lines(ranked, "reversed"))
    return path


def direct_per_query(run: Path, measure_names: list[str]) -> dict[str, dict[str, float]]:
    """measure -> qid -> value, from ir-measures on the files; judged queries absent from the run are 0."""
    measures = [ir_measures.parse_measure(name) for name in measure_names]
    values = {str(m): {} for m in measures}
    for metric in ir_measures.iter_calc(
        measures, ir_measures.read_trec_qrels(str(QRELS)), ir_measures.read_trec_run(str(run))
    ):
        values[str(metric.measure)][metric.query_id] = metric.value
    judged = {qrel.query_id for qrel in ir_measures.read_trec_qrels(str(QRELS))}
    return {m: {qid: per_query.get(qid, 0.0) for qid in sorted(judged)} for m, per_query in values.items()}


# --------------------------------------------------------------------------------------------------
# Aggregates
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["first_stage", "reversed"])
def test_default_aggregates_equal_ir_measures_on_the_files(which: str, other_run: Path) -> None:
    path = FIRST_STAGE if which == "first_stage" else other_run
    report = evaluate(frame_of(path), read_qrels(QRELS))
    measures = [ir_measures.parse_measure(name) for name in DEFAULT_MEASURES]
    direct = ir_measures.calc_aggregate(
        measures, ir_measures.read_trec_qrels(str(QRELS)), ir_measures.read_trec_run(str(path))
    )
    assert report.measures == [str(m) for m in measures]
    for measure in measures:
        assert report.runs[0].aggregate[str(measure)] == pytest.approx(direct[measure], abs=1e-12)


def test_per_query_values_equal_ir_measures_and_missing_queries_are_zero(other_run: Path) -> None:
    report = evaluate(frame_of(other_run), read_qrels(QRELS))
    evaluation = report.runs[0]
    assert evaluation.missing_queries == ["q4"]
    assert evaluation.unjudged_queries == []
    direct = direct_per_query(other_run, list(DEFAULT_MEASURES))
    for measure, per_query in direct.items():
        assert evaluation.per_query[measure].to_dict() == pytest.approx(per_query, abs=1e-12)
    assert (evaluation.per_query.loc["q4"] == 0.0).all()


def test_hand_computed_example_with_a_missing_and_an_unjudged_query() -> None:
    qrels = pd.DataFrame(
        [("q1", "d1", 1), ("q1", "d2", 0), ("q2", "d3", 1)], columns=["query_id", "doc_id", "relevance"]
    )
    # q1: the relevant d1 at rank 2; q2 judged but absent from the run; q3 in the run but unjudged
    run = run_frame({"q1": [("d2", 2.0), ("d1", 1.0)], "q3": [("d3", 5.0)]})
    evaluation = evaluate(run, qrels, ["RR", "AP", "nDCG@10", "R@1", "R@10", "P@2"]).runs[0]
    q1_ndcg = (1 / math.log2(3)) / 1.0
    assert evaluation.aggregate == pytest.approx(
        {"RR": 0.5 / 2, "AP": 0.5 / 2, "nDCG@10": q1_ndcg / 2, "R@1": 0.0, "R@10": 1.0 / 2, "P@2": 0.5 / 2},
        abs=1e-12,
    )
    assert evaluation.missing_queries == ["q2"]
    assert evaluation.unjudged_queries == ["q3"]
    assert list(evaluation.per_query.index) == ["q1", "q2"]
    assert evaluation.per_query.loc["q2"].tolist() == [0.0] * 6


def test_run_given_as_mapping_or_file(other_run: Path) -> None:
    qrels = read_qrels(QRELS)
    from_frame = evaluate(frame_of(other_run), qrels).runs[0].aggregate
    assert evaluate(other_run, qrels).runs[0].aggregate == from_frame
    assert evaluate(read_run(other_run), qrels).runs[0].aggregate == from_frame


# --------------------------------------------------------------------------------------------------
# Baseline comparison
# --------------------------------------------------------------------------------------------------


def test_comparison_equals_scipy_paired_t_test(other_run: Path) -> None:
    names = ["nDCG@10", "AP", "RR", "P@1"]
    report = evaluate(frame_of(other_run), read_qrels(QRELS), names, baseline=frame_of(FIRST_STAGE))
    ours, theirs = direct_per_query(other_run, names), direct_per_query(FIRST_STAGE, names)
    assert [c.measure for c in report.comparisons] == names
    for comparison in report.comparisons:
        a = list(ours[comparison.measure].values())
        b = list(theirs[comparison.measure].values())
        assert comparison.delta == pytest.approx(sum(a) / len(a) - sum(b) / len(b), abs=1e-12)
        differences = [x - y for x, y in zip(a, b, strict=True)]
        assert (comparison.wins, comparison.ties, comparison.losses) == (
            sum(d > 0 for d in differences),
            sum(d == 0 for d in differences),
            sum(d < 0 for d in differences),
        )
        if len(set(differences)) > 1:
            assert comparison.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
        else:
            assert math.isnan(comparison.p_value)
    # the reversed run loses somewhere: the comparison is not vacuous
    assert any(c.losses > 0 for c in report.comparisons)
    assert any(not math.isnan(c.p_value) for c in report.comparisons)


def scipy_p(ours: list[float], theirs: list[float]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy warns of a zero variance or too few pairs
        return float(stats.ttest_rel(ours, theirs).pvalue)


def test_the_paired_t_test_equals_scipys_ttest_rel_without_importing_scipy() -> None:
    """From 2 to 5,000 queries, measure-like values (in [0, 1], ties, a few distinct levels) and tiny or large
    differences: the p-value of `scipy.stats.ttest_rel` to 1e-9 relative (scipy's mean and variance round
    differently in the last bits, which the far tail magnifies)."""
    generator = random.Random(37)
    for _ in range(400):
        count = generator.choice([2, 3, 5, 10, 50, 300, 5000])
        ours = [generator.random() for _ in range(count)]
        spread, shift = generator.choice([1e-6, 0.01, 0.3]), generator.choice([0.0, 0.01, 0.2, 1.0])
        theirs = [value - shift * generator.random() + generator.gauss(0.0, spread) for value in ours]
        if generator.random() < 0.3:
            ours, theirs = [round(v, 1) for v in ours], [round(v, 1) for v in theirs]
        differences = {a - b for a, b in zip(ours, theirs, strict=True)}
        expected = math.nan if len(differences) == 1 else scipy_p(ours, theirs)  # see the test below
        if math.isnan(expected):
            assert math.isnan(paired_t_p_value(ours, theirs))
        else:
            assert paired_t_p_value(ours, theirs) == pytest.approx(expected, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [
        ([0.5], [0.25]),  # one pair: no variance to estimate
        ([], []),
        ([0.5, 0.7, 0.9], [0.4, 0.6, 0.8]),  # every difference equal: zero variance (scipy: t = inf, p = 0)
        ([1.0, 1.0], [1.0, 1.0]),  # no difference (scipy: 0 / 0, nan)
        ([0.5, math.nan, 0.9], [0.4, 0.6, 0.1]),  # scipy propagates a nan
    ],
    ids=["one pair", "no pairs", "equal differences", "identical", "nan"],
)
def test_an_undefined_paired_t_test_is_nan(ours: list[float], theirs: list[float]) -> None:
    """nan where scipy's is nan, and where every difference is equal: there the t statistic divides by a zero
    deviation, and rankvideo has always reported no test rather than scipy's p = 0 for a constant shift."""
    assert math.isnan(paired_t_p_value(ours, theirs))
    assert math.isnan(scipy_p(ours, theirs)) or len({a - b for a, b in zip(ours, theirs, strict=True)}) == 1


def test_the_t_distributions_tail_equals_scipys() -> None:
    """To 1e-12 up to 10,000 queries (1e-10 at a million, where one of the two has lost digits); with one
    degree of freedom, the Cauchy distribution's closed form (scipy's loses digits at a tiny t)."""
    from scipy import special

    for t in (0.0, 1e-8, 0.1, 1.0, 30.0, 1e3):
        assert two_sided_p(t, 1) == pytest.approx(1 - 2 / math.pi * math.atan(t), rel=1e-14)
    for df in (2, 3, 7, 30, 299, 4999, 1e6):
        for t in (0.0, 1e-8, 0.1, 0.5, 1.0, 2.0, 5.0, 30.0, 1e3, math.inf):
            expected = 2 * special.stdtr(df, -abs(t))
            assert two_sided_p(t, df) == pytest.approx(expected, rel=1e-12 if df < 1e4 else 1e-10, abs=1e-300)


def test_comparing_a_run_with_itself_ties_everywhere() -> None:
    frame = frame_of(FIRST_STAGE)
    report = evaluate(frame, read_qrels(QRELS), baseline=frame)
    for comparison in report.comparisons:
        assert (comparison.delta, comparison.wins, comparison.ties, comparison.losses) == (0.0, 0, 4, 0)
        assert math.isnan(comparison.p_value)


# --------------------------------------------------------------------------------------------------
# Measures and output formats
# --------------------------------------------------------------------------------------------------


def test_parse_measure_specs() -> None:
    assert [spec.label for spec in parse_measure_specs(None)] == list(DEFAULT_MEASURES)
    assert [str(spec.measure) for spec in parse_measure_specs(None)] == list(DEFAULT_MEASURES)
    assert [spec.measure for spec in parse_measure_specs(["MAP"])] == [ir_measures.AP]
    assert parse_measure_specs(["nDCG@10", "ndcg_cut.10", "nDCG@10"]) == [MeasureSpec("nDCG@10", ir_measures.nDCG @ 10)]
    for bad in ("nDCG@x", "bogus", "P@"):
        with pytest.raises(UsageError, match="unknown measure"):
            parse_measure_specs([bad])


@pytest.fixture(scope="module")
def compared_report(other_run: Path):
    """The reversed run against the first stage without q4: R@10 ties on every query (both runs hold the same
    ten documents, and q4 counts as zero in both), nDCG@10 does not."""
    baseline = frame_of(FIRST_STAGE)
    baseline = baseline[baseline["query_id"] != "q4"]
    return evaluate(frame_of(other_run), read_qrels(QRELS), ["nDCG@10", "R@10"], baseline=baseline)


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_delimited_formats_parse_back(compared_report, fmt: str) -> None:
    text = format_report(compared_report, fmt, per_query=True)
    # round_trip: pandas < 3 parses floats with a fast parser that can be off in the last bit
    separator = "\t" if fmt == "tsv" else ","
    frame = pd.read_csv(io.StringIO(text), sep=separator, dtype={"query_id": str}, float_precision="round_trip")
    ours, baseline = compared_report.runs
    for evaluation in (ours, baseline):
        rows = frame[(frame["run"] == evaluation.name) & (frame["query_id"] == "all")]
        assert dict(zip(rows["measure"], rows["value"], strict=True)) == evaluation.aggregate
        per_query = frame[(frame["run"] == evaluation.name) & (frame["query_id"] != "all")]
        assert len(per_query) == 2 * len(evaluation.per_query)
    summary = frame[(frame["run"] == ours.name) & (frame["query_id"] == "all")].set_index("measure")
    for comparison in compared_report.comparisons:
        row = summary.loc[comparison.measure]
        assert row["delta"] == comparison.delta
        assert (row["wins"], row["ties"], row["losses"]) == (comparison.wins, comparison.ties, comparison.losses)
        # p-values at the table's precision (3 significant digits), the same in every format but json
        assert (math.isnan(row["p_value"]) and math.isnan(comparison.p_value)) or row["p_value"] == float(
            format_p(comparison.p_value)
        )
    p_texts = [line.split(separator)[-2] for line in text.splitlines()[1:] if line.split(separator)[-2]]
    assert p_texts and all(len(p.replace("0.", "").lstrip("0")) == 3 for p in p_texts if "e" not in p), p_texts


def pandas_text(report, fmt: str) -> str:
    """The tsv and csv as pandas wrote them before they were written without pandas."""
    frame = report_frame(report, per_query=True)
    for column in ("p_value", "p_value_corrected"):
        if column in frame.columns:
            frame[column] = [None if pd.isna(value) else format_p(value) for value in frame[column]]
    return frame.to_csv(sep="\t" if fmt == "tsv" else ",", index=False, lineterminator="\n")


@pytest.mark.parametrize("fmt", ["tsv", "csv"])
def test_delimited_formats_are_what_pandas_wrote(compared_report, other_run: Path, fmt: str) -> None:
    """Byte for byte, with and without a baseline, names that need quoting, nan p-values and long floats."""
    assert format_report(compared_report, fmt, per_query=True) == pandas_text(compared_report, fmt)
    odd_names = evaluate_runs(
        [('run, "quoted"\tand tabbed', frame_of(other_run)), ("plain", frame_of(FIRST_STAGE))],
        read_qrels(QRELS),
        ["nDCG@10", "num_rel", "P@3"],
        baseline=("base", frame_of(other_run)),
    )
    assert format_report(odd_names, fmt, per_query=True) == pandas_text(odd_names, fmt)
    alone = evaluate(frame_of(other_run), read_qrels(QRELS))
    assert format_report(alone, fmt, per_query=True) == pandas_text(alone, fmt)


def test_per_query_values_are_also_a_data_frame(compared_report) -> None:
    """`per_query`: index query_id (sorted), a float column per measure, built from `values` when asked for."""
    evaluation = compared_report.runs[0]
    frame = evaluation.per_query
    assert frame.index.name == "query_id" and list(frame.index) == sorted(evaluation.values)
    assert list(frame.columns) == compared_report.measures and all(str(t) == "float64" for t in frame.dtypes)
    assert frame.to_dict("index") == evaluation.values


def reject_constant(name: str) -> None:
    raise ValueError(f"not JSON: {name}")


def test_json_format_is_strict_json(compared_report) -> None:
    # R@10 ties on every query: its p-value is nan, which must not be written as the non-JSON NaN
    assert any(math.isnan(c.p_value) for c in compared_report.comparisons)
    payload = json.loads(format_report(compared_report, "json", per_query=True), parse_constant=reject_constant)
    assert payload["measures"] == ["nDCG@10", "R@10"]
    runs = {entry["name"]: entry for entry in payload["runs"]}
    ours = compared_report.runs[0]
    assert runs[ours.name]["aggregate"] == ours.aggregate
    assert runs[ours.name]["missing_queries_counted_as_zero"] == ["q4"]
    assert runs[ours.name]["per_query"]["q1"] == ours.per_query.loc["q1"].to_dict()
    comparisons = {c["measure"]: c for c in payload["comparison"]}
    assert comparisons["R@10"]["p_value"] is None
    assert comparisons["nDCG@10"]["p_value"] == compared_report.comparisons[0].p_value


def test_unknown_format_is_a_usage_error(compared_report) -> None:
    with pytest.raises(UsageError):
        format_report(compared_report, "xml")


def test_table_shows_aggregates_and_comparison(compared_report) -> None:
    buffer = io.StringIO()
    render_table(compared_report, Console(file=buffer, width=200, highlight=False), per_query=True)
    text = buffer.getvalue()
    ours = compared_report.runs[0]
    for measure in ("nDCG@10", "R@10"):
        assert measure in text
        assert f"{ours.aggregate[measure]:.4f}" in text
    comparison = compared_report.comparisons[0]
    assert f"{comparison.wins}/{comparison.ties}/{comparison.losses}" in text
    assert "1 judged query missing from the run" in text


# --------------------------------------------------------------------------------------------------
# trec_eval -c counts, trec_eval names, several runs and multiple-testing corrections
# --------------------------------------------------------------------------------------------------


def test_counts_follow_trec_eval_dash_c_for_a_judged_query_missing_from_the_run() -> None:
    # q1: 2 relevant (one at level 2), both retrieved with a non-relevant; q2: judged (3 relevant), not in the run
    qrels = {"q1": {"a": 1, "b": 2, "c": 0}, "q2": {"x": 1, "y": 1, "z": 2, "w": 0}}
    run = {"q1": {"a": 3.0, "c": 2.0, "b": 1.0}}
    names = ["num_q", "num_rel", "num_rel_ret", "num_ret", "map"]
    evaluation = evaluate(run, qrels, names).runs[0]
    # what `trec_eval -c -m num_q -m num_rel -m num_rel_ret -m num_ret -m map` prints for these files
    assert evaluation.aggregate == {
        "num_q": 2.0,
        "num_rel": 5.0,
        "num_rel_ret": 2.0,
        "num_ret": 3.0,
        "map": pytest.approx((1.0 + 2 / 3) / 2 / 2, abs=1e-12),
    }
    assert evaluation.per_query.loc["q2"].to_dict() == {
        "num_q": 1.0,
        "num_rel": 3.0,
        "num_rel_ret": 0.0,
        "num_ret": 0.0,
        "map": 0.0,
    }
    # where no query is missing, the counts are ir-measures' own
    measures = [spec.measure for spec in parse_measure_specs(names)]
    direct = ir_measures.calc_aggregate(measures, {"q1": qrels["q1"]}, run)
    assert list(evaluate(run, {"q1": qrels["q1"]}, names).runs[0].aggregate.values()) == [
        direct[measure] for measure in measures
    ]


def test_a_measure_no_installed_backend_computes_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"NumRel\(rel=2\)"):
        evaluate({"q1": {"a": 1.0}}, {"q1": {"a": 1}}, ["NumRel(rel=2)"])


def test_measures_are_labelled_with_the_names_asked_for() -> None:
    specs = parse_measure_specs(["num_rel_ret", "ndcg_cut.10", "P.5,10", "nDCG@10", "iprec_at_recall", "MAP"])
    assert [spec.label for spec in specs] == [
        "num_rel_ret",
        "ndcg_cut.10",
        "P_5",
        "P_10",
        *(f"iprec_at_recall_{level / 10:.2f}" for level in range(11)),
        "MAP",
    ]
    assert specs[0].measure == ir_measures.NumRet(rel=1)
    report = evaluate(FIRST_STAGE, read_qrels(QRELS), ["num_rel_ret", "P.5,10"])
    assert report.measures == ["num_rel_ret", "P_5", "P_10"]
    assert (
        report.runs[0].aggregate["P_5"]
        == ir_measures.calc_aggregate(
            [ir_measures.P @ 5], ir_measures.read_trec_qrels(str(QRELS)), ir_measures.read_trec_run(str(FIRST_STAGE))
        )[ir_measures.P @ 5]
    )


def test_holm_and_bonferroni_by_hand() -> None:
    p = [0.01, 0.04, math.nan, 0.03, 0.5]
    # Holm over the 4 defined tests: sorted 0.01, 0.03, 0.04, 0.5 -> 4*0.01, 3*0.03, max(0.09, 2*0.04), 1*0.5
    holm = correct_p_values(p, "holm")
    assert holm[0] == pytest.approx(0.04) and holm[3] == pytest.approx(0.09) and holm[1] == pytest.approx(0.09)
    assert holm[4] == pytest.approx(0.5) and math.isnan(holm[2])
    assert correct_p_values(p, "bonferroni")[:2] == pytest.approx([0.04, 0.16])
    assert correct_p_values([0.4, 0.6], "bonferroni") == [0.8, 1.0]
    assert correct_p_values(p, "none")[:2] == [0.01, 0.04]
    with pytest.raises(UsageError):
        correct_p_values(p, "sidak")


def test_several_runs_against_one_baseline_with_holm(other_run: Path) -> None:
    qrels = read_qrels(QRELS)
    runs = [("reversed", other_run), ("same", FIRST_STAGE)]
    report = evaluate_runs(runs, qrels, ["nDCG@10", "AP"], baseline=("first", FIRST_STAGE))
    assert [evaluation.name for evaluation in report.runs] == ["reversed", "same", "first"]
    assert [(c.run, c.measure) for c in report.comparisons] == [
        ("reversed", "nDCG@10"),
        ("reversed", "AP"),
        ("same", "nDCG@10"),
        ("same", "AP"),
    ]
    single = evaluate(other_run, qrels, ["nDCG@10", "AP"], baseline=FIRST_STAGE)
    for ours, alone in zip(report.comparisons[:2], single.comparisons, strict=True):
        assert (ours.delta, ours.wins, ours.ties, ours.losses, ours.p_value) == (
            alone.delta,
            alone.wins,
            alone.ties,
            alone.losses,
            alone.p_value,
        )
        # the "same" run's test is undefined (no differences), so each family holds one test: Holm leaves it
        assert ours.p_value_corrected == ours.p_value
    frame = pd.read_csv(io.StringIO(format_report(report, "tsv")), sep="\t")
    assert set(frame.columns) >= {"missing_queries", "p_value_corrected"}
    assert frame.set_index("run").loc["reversed", "missing_queries"].tolist() == [1, 1]  # q4 left out
    with pytest.raises(UsageError, match="same name"):
        evaluate_runs([("a", FIRST_STAGE), ("a", other_run)], qrels)


def test_check_measures_refuses_what_evaluation_would_refuse_later() -> None:
    check_measures(["nDCG@10", "num_rel_ret", "P.5,10"])
    for bad, words in ((["bogus"], "unknown measure"), (["NumRel(rel=2)"], "no installed ir-measures backend")):
        with pytest.raises(UsageError, match=words):
            check_measures(bad)
