"""The report's page as markup: valid HTML with unique ids (checked by an HTML parser), several runs on one page
with the numbers of `rankvideo eval`, each run's scores and answers matched to it, its charts linked to the
queries, and one score column where the run's score is the model's.

How the page looks and behaves in a browser (layout, deep links, console) is tests/test_system_browser.py.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke
from report_browser import MULTIVENT, RUN_A, RUN_B, sample_report
from test_cli_report import embedded_json, write_hostile_run, write_scores

from rankvideo_cli.errors import UsageError
from rankvideo_cli.jobs.report import files_per_run
from rankvideo_cli.report import charts

# Elements that have no end tag in HTML, and those whose end tag the parser may leave out (none of which the
# report's template leaves out, so they are checked like any other)
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class PageChecker(HTMLParser):
    """What an HTML validator says of the report that matters here: a repeated id, an element closed that is not
    the one open (or never closed), an attribute given twice, and a same-page link (#id) to no element."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.ids: dict[str, int] = {}
        self.links: list[str] = []
        self.open: list[str] = []

    def _attributes(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        for name in sorted({name for name in names if names.count(name) > 1}):
            self.problems.append(f"line {self.getpos()[0]}: <{tag}> has {name} twice")
        for name, value in attrs:
            if name == "id" and value is not None:
                if value in self.ids:
                    self.problems.append(f"line {self.getpos()[0]}: id {value!r} again (first at {self.ids[value]})")
                self.ids.setdefault(value, self.getpos()[0])
            if name in ("href", "xlink:href") and value and value.startswith("#"):
                self.links.append(value[1:])

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attributes(tag, attrs)
        if tag not in VOID:
            self.open.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attributes(tag, attrs)  # <path ... /> in the SVGs: opened and closed at once

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"line {self.getpos()[0]}: </{tag}> closes <{self.open[-1] if self.open else ''}>")
            if tag in self.open:
                del self.open[len(self.open) - 1 - self.open[::-1].index(tag) :]
            return
        self.open.pop()

    def check(self, page: str) -> list[str]:
        self.feed(page)
        self.close()
        if self.open:
            self.problems.append(f"never closed: {self.open}")
        self.problems += [f"a link to #{link}, which no element has" for link in self.links if link not in self.ids]
        return self.problems


def page_problems(page: str) -> list[str]:
    return PageChecker().check(page)


def test_the_checker_reports_duplicate_ids_bad_nesting_and_dangling_links() -> None:
    page = '<div id="a"><p id="a">x</div><a href="#b">b</a><svg><path id="c"/></svg>'
    assert page_problems(page) == [
        "line 1: id 'a' again (first at 1)",
        "line 1: </div> closes <p>",
        "a link to #b, which no element has",
    ]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_report(tmp_path_factory.mktemp("two-runs"))


def test_the_two_run_report_is_valid_html_with_unique_ids(two_runs: Path) -> None:
    page = two_runs.read_text()
    assert page_problems(page) == []
    # the sections' templates are parsed as markup too: their contents are checked above, and hold no id at all
    # (a section rendered twice, or the same docid in two columns, can repeat nothing)
    for template in re.findall(r"<template>(.*?)</template>", page, re.S):
        assert " id=" not in template


def test_reports_of_one_run_without_a_baseline_or_with_hostile_ids_are_valid_html(tmp_path: Path) -> None:
    flat = tmp_path / "flat.html"
    made = invoke("report", SAMPLE / "first_stage.trec", "--qrels", SAMPLE / "qrels.txt", "--thumbnails", "0",
                  "-o", flat)  # fmt: skip
    assert made.exit_code == 0, made.output
    hostile = tmp_path / "hostile.html"
    run = write_hostile_run(tmp_path)
    made = invoke("report", run, "--baseline", run, "--qrels", SAMPLE / "qrels.txt", "-o", hostile)
    assert made.exit_code == 0, made.output
    assert page_problems(flat.read_text()) == []
    assert page_problems(hostile.read_text()) == []


def test_the_overview_has_a_column_per_run_with_the_numbers_of_eval(two_runs: Path) -> None:
    directory = two_runs.parent
    evaluated = invoke("eval", directory / RUN_A, directory / RUN_B, MULTIVENT / "judgments.jsonl", "--baseline",
                       MULTIVENT / "first_stage.trec", "--format", "json")  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    expected = json.loads(evaluated.stdout)
    page = two_runs.read_text()
    assert embedded_json(page, "rankvideo-evaluation") == expected
    comparisons = {(c["run"], c["measure"]): c for c in expected["comparison"]}
    for measure in expected["measures"]:
        row = re.search(rf'<tr data-measure="{re.escape(measure)}">(.*?)</tr>', page, re.S)
        assert row, measure
        cells = re.findall(r'<td class="run" data-run="([AB])" data-value="([^"]+)">(.*?)</td>', row.group(1), re.S)
        assert [letter for letter, _, _ in cells] == ["A", "B"]
        for (_, value, cell), run in zip(cells, expected["runs"][:2], strict=True):
            compared = comparisons[(run["name"], measure)]
            assert float(value) == run["aggregate"][measure]
            assert f"{compared['wins']}/{compared['ties']}/{compared['losses']}" in cell
            corrected = compared["p_value_corrected"]
            assert f"holm {'-' if corrected is None else format(corrected, '#.3g')}" in cell


def test_each_query_shows_the_baseline_and_every_run(two_runs: Path) -> None:
    page = two_runs.read_text()
    templates = re.findall(r"<template>(.*?)</template>", page, re.S)
    assert len(templates) == 4
    for template in templates:
        headings = re.findall(r"<h4>(.*?)</h4>", template, re.S)
        assert [re.sub(r"<[^>]+>", "", heading).strip() for heading in headings] == [
            "baseline: first_stage.trec",
            f"A {RUN_A} (ranked by logit_delta: its score)",
            f"B {RUN_B}",
        ]
        # the baseline's rows say where each run put them
        assert "<th>in A</th><th>in B</th>" in template


def test_a_run_ranked_by_the_model_score_alone_shows_it_once(two_runs: Path) -> None:
    """rankvideo.trec's score is its logit_delta (no interpolation): one column; qwen3-vl.trec's is interpolated
    with the first stage's: the run's score and the model's both."""
    template = re.search(r"<template>(.*?)</template>", two_runs.read_text(), re.S).group(1)
    baseline, ranked_by_model, interpolated = re.findall(r"<thead>(.*?)</thead>", template, re.S)
    headers = [re.findall(r"<th>(.*?)</th>", head) for head in (baseline, ranked_by_model, interpolated)]
    assert headers == [
        ["rank", "in A", "in B", "docid", "judged", "score", "frames the model saw"],
        ["rank", "move", "docid", "judged", "logit_delta", "p_yes", "frames the model saw"],
        ["rank", "move", "docid", "judged", "score", "logit_delta", "p_yes", "frames the model saw"],
    ]


def test_scores_named_by_their_run_follow_it_whatever_the_order(two_runs: Path, tmp_path: Path) -> None:
    directory = two_runs.parent
    named = tmp_path / "named.html"
    made = invoke(
        "report", directory / RUN_B, directory / RUN_A, "--baseline", MULTIVENT / "first_stage.trec",
        "--qrels", MULTIVENT / "judgments.jsonl", "--queries", MULTIVENT / "queries.csv", "--videos",
        MULTIVENT / "videos", "-o", named,
        "--scores", f"{directory / RUN_A}={directory / 'rankvideo.scores.jsonl'}",
        "--scores", f"{RUN_B}={directory / 'qwen3-vl.scores.jsonl'}",  # by the file name alone
    )  # fmt: skip
    assert made.exit_code == 0, made.output
    page = named.read_text()
    # the runs in the order given (B first now), each with its own scores: A's column still ranked by them
    assert re.findall(r'<td class="run" data-run="([AB])"', page)[:2] == ["A", "B"]
    assert f'<b class="letter">B</b> {RUN_A} <span class="note">(ranked by logit_delta: its score)</span>' in page


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], [None, None]),
        (["a.jsonl", "b.jsonl"], [Path("a.jsonl"), Path("b.jsonl")]),
        (["runs/b.trec=b.jsonl"], [None, Path("b.jsonl")]),
        (["b.trec=b.jsonl", "a.jsonl"], [Path("a.jsonl"), Path("b.jsonl")]),  # the plain one: the run left
    ],
)
def test_each_runs_file_is_named_or_taken_in_order(values: list[str], expected: list[Path | None]) -> None:
    assert files_per_run("--scores", values, [Path("a.trec"), Path("runs/b.trec")]) == expected


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["a.jsonl"], "--scores: 1 file for 2 runs: give one per run, in the runs' order, or name each run's"),
        (["a.trec=1", "a.trec=2"], "--scores: two files for the run a.trec"),
        (["c.trec=c.jsonl"], "--scores c.trec=c.jsonl: 'c.trec' is not one of the runs (a.trec, runs/b.trec)"),
    ],
)
def test_scores_that_match_no_run_are_refused(values: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=re.escape(message)):
        files_per_run("--scores", values, [Path("a.trec"), Path("runs/b.trec")])


def test_too_few_scores_for_the_runs_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    scores = write_scores(SAMPLE / "first_stage.trec", tmp_path / "scores.jsonl")
    output = tmp_path / "report.html"
    result = invoke("report", SAMPLE / "first_stage.trec", SAMPLE / "first_stage.trec", "--scores", scores,
                    "-o", output)  # fmt: skip
    assert result.exit_code == 2 and not output.exists()
    (line,) = result.stderr.strip().splitlines()
    assert "--scores: 1 file for 2 runs" in line


def test_each_bar_of_the_change_chart_links_to_its_querys_section(two_runs: Path) -> None:
    page = two_runs.read_text()
    sections = dict(re.findall(r'<section class="query" id="(q-\d+)" data-qid="([^"]+)"', page))
    for run in ("run1", "run2"):
        chart = re.search(rf'<figure id="chart-{run}-delta">(.*?)</figure>', page, re.S).group(1)
        bars = re.findall(r'<a xlink:href="#(q-\d+)"><title>([^:]+): Δ nDCG@10 ([-+.\d]+)</title>', chart)
        # each query's bar and its qid below it (4 queries: few enough to print them)
        assert sorted({(link, qid) for link, qid, _ in bars}) == sorted(sections.items())
        assert len(bars) == 2 * len(sections)


def test_charts_of_several_runs_share_no_id() -> None:
    first = charts.score_ecdf_chart([0.5, 1.0], [0.1, 0.2], "score", "run1-ecdf")
    second = charts.score_ecdf_chart([0.5, 1.0], [0.1, 0.2], "score", "run2-ecdf")
    ids = re.findall(r'\bid="([^"]+)"', first + second)
    assert ids and len(ids) == len(set(ids))
    assert all(name.startswith(("run1-ecdf-", "run2-ecdf-")) for name in ids)
    # every reference inside a chart follows its renamed id
    references = re.findall(r'(?:url\(#|href="#)([^)"]+)', first)
    assert references and all(reference.startswith("run1-ecdf-") for reference in references)


def test_relevant_and_non_relevant_are_drawn_apart_in_colour_blind_safe_colours() -> None:
    """No translucent layer over another (two colours mixing into a third): lines of their own in the ECDF, and
    points side by side in the strips, in Okabe and Ito's blue and orange."""
    per_query = [("q1", [(0.9, 1), (0.1, 0), (0.2, 0)]), ("q2", [(0.4, 1), (0.3, 0)])]
    drawn = charts.score_ecdf_chart([0.9, 0.4], [0.1, 0.2, 0.3], "score", "e") + charts.strip_chart(
        per_query, "score", {"q1": "#q-1"}, "s"
    )
    assert "opacity" not in drawn
    assert charts.RELEVANT.lower() in drawn.lower() and charts.NOT_RELEVANT.lower() in drawn.lower()


def test_an_ecdf_of_thousands_of_scores_is_drawn_at_a_few_hundred_steps() -> None:
    xs, ys = charts._ecdf_steps([float(value % 101) for value in range(5000)])
    assert len(xs) == charts.ECDF_POINTS and ys[-1] == 1.0 and xs == sorted(xs)


def test_the_two_run_report_is_the_same_bytes_made_again(two_runs: Path, tmp_path: Path) -> None:
    again = sample_report(tmp_path, "--decode-workers", "1")  # other files, other threads: the same page
    assert again.read_bytes() == two_runs.read_bytes()
