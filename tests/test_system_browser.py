"""The sample's report in a real browser: Debian's Chromium, driven by Playwright.

CI installs Chromium (`.ci/run`) and sets RANKVIDEO_REQUIRE_BROWSER=1, which turns the skip below into a
failure: without a browser nobody has seen the page work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import invoke
from report_browser import MULTIVENT, browser_page, chromium_path, load_every_image, sample_report
from test_cli_report import HOSTILE_IDS, write_hostile_run

try:
    import playwright  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:
    HAVE_PLAYWRIGHT = False

if not (HAVE_PLAYWRIGHT and chromium_path()):
    missing = "Chromium (apt-get install chromium)" if HAVE_PLAYWRIGHT else "playwright (pip install playwright)"
    if os.environ.get("RANKVIDEO_REQUIRE_BROWSER") == "1":
        pytest.fail(f"RANKVIDEO_REQUIRE_BROWSER=1 but {missing} is not installed", pytrace=False)
    pytest.skip(f"the browser test needs {missing}", allow_module_level=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sample_report(tmp_path_factory.mktemp("report"))


@pytest.fixture
def page(report: Path):
    with browser_page() as (opened, errors):
        opened.goto(report.as_uri())
        yield opened
        assert errors == []  # no console error, no uncaught exception, at any step of the test


def qids_in_order(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all("section.query", "sections => sections.map(s => s.dataset.qid)")


def visible_qids(page) -> list[str]:  # type: ignore[no-untyped-def]
    return page.eval_on_selector_all(
        "section.query", "sections => sections.filter(s => !s.hidden).map(s => s.dataset.qid)"
    )


def test_one_section_per_query_with_every_thumbnail_decoded(page) -> None:  # type: ignore[no-untyped-def]
    assert sorted(qids_in_order(page)) == ["q1", "q2", "q3", "q4"]
    widths = load_every_image(page)
    assert (
        len(widths) == 4 * 2 * 4 * 10 - 4 * 2 * 4
    )  # 4 queries x 2 columns x 10 rows x 4 frames, less the missing video's
    assert all(width > 0 for width in widths)
    assert page.locator("td.thumbs .problem").count() > 0  # the missing video is shown as such


def test_sorting_by_delta_reorders_the_sections(page) -> None:  # type: ignore[no-untyped-def]
    deltas = dict(
        page.eval_on_selector_all(
            "section.query", "sections => sections.map(s => [s.dataset.qid, parseFloat(s.dataset.delta)])"
        )
    )
    gains_first = qids_in_order(page)
    assert gains_first == sorted(deltas, key=lambda qid: (-deltas[qid], qid))
    page.select_option("#sort", "delta-asc")
    losses_first = qids_in_order(page)
    assert losses_first == sorted(deltas, key=lambda qid: (deltas[qid], qid))
    assert losses_first != gains_first
    page.select_option("#sort", "qid")
    assert qids_in_order(page) == ["q1", "q2", "q3", "q4"]


def test_the_overview_shows_the_numbers_of_rankvideo_eval(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    reranked = report.parent / "reranked.trec"
    evaluated = subprocess.run(
        [sys.executable, "-m", "rankvideo_cli.cli", "eval", str(reranked), str(MULTIVENT / "judgments.jsonl"),
         "--baseline", str(MULTIVENT / "first_stage.trec"), "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = json.loads(evaluated.stdout)
    run, baseline = expected["runs"]
    shown = page.eval_on_selector_all(
        "#measures tbody tr",
        """rows => rows.map(row => [row.dataset.measure, parseFloat(row.querySelector('td.run').dataset.value),
            parseFloat(row.querySelector('td.baseline').dataset.value), row.querySelector('td.wtl').textContent])""",
    )
    assert [measure for measure, *_ in shown] == expected["measures"]
    comparisons = {comparison["measure"]: comparison for comparison in expected["comparison"]}
    for measure, ours, theirs, wtl in shown:
        assert ours == run["aggregate"][measure]
        assert theirs == baseline["aggregate"][measure]
        won = comparisons[measure]
        assert wtl == f"{won['wins']}/{won['ties']}/{won['losses']}"


def test_the_search_box_filters_by_qid_and_text(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#search", "red ball")
    assert visible_qids(page) == ["q1"]
    assert page.text_content("#shown") == "1 of 4 queries"
    page.fill("#search", "Q3")
    assert visible_qids(page) == ["q3"]
    page.fill("#search", "")
    assert sorted(visible_qids(page)) == ["q1", "q2", "q3", "q4"]


HOSTILE_TEXT = "</script><!--<script> __proto__ & constructor \u2028 {{ 1 }}"


def hostile_reports(directory: Path) -> list[Path]:
    """Reports whose qids, docids, query texts and explanations are all HTML or JavaScript syntax: one with
    thumbnails (each docid a key of the page's JSON) and one without (no docid found there)."""
    run = write_hostile_run(directory)
    qids = sorted({line.split()[0] for line in run.read_text().splitlines()})
    queries = directory / "queries.tsv"
    queries.write_text("qid\ttext\n" + "".join(f"{qid}\t{qid} {HOSTILE_TEXT}\n" for qid in qids))
    qrels = directory / "qrels.txt"
    qrels.write_text("".join(f"{qid} 0 {docid} {n % 2}\n" for qid in qids for n, docid in enumerate(HOSTILE_IDS)))
    videos = directory / "videos"
    videos.mkdir()
    for docid in HOSTILE_IDS:
        if "/" not in docid:  # `</script><b>x` cannot be a file name: a missing video
            shutil.copy(MULTIVENT.parent / "videos" / "v001.mp4", videos / f"{docid}.mp4")
    explanations = directory / "explain.jsonl"
    explanations.write_text(
        "".join(
            json.dumps({"video": str(videos / f"{docid}.mp4"), "query": f"{qid} {HOSTILE_TEXT}", "text": HOSTILE_TEXT})
            + "\n"
            for qid in qids
            for docid in HOSTILE_IDS
            if "/" not in docid
        )
    )
    reports = []
    for thumbnails in (1, 0):
        report = directory / f"hostile-{thumbnails}.html"
        result = invoke(
            "report", run, "--baseline", run, "--qrels", qrels, "--queries", queries, "--videos", videos,
            "--explanations", explanations, "--thumbnails", thumbnails, "-o", report,
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        reports.append(report)
    return reports


def test_hostile_ids_and_texts_render_as_text(tmp_path: Path) -> None:
    """HTML and JavaScript syntax in every field the page shows: every section renders, each id and text shows
    as itself, and the page logs no error (ids like `<!--<script>` and `constructor` once stopped its script)."""
    qids = ["<!--<script>", "__proto__", "constructor"]
    shown_videos = len(HOSTILE_IDS) - 1  # `</script><b>x` has no file
    with browser_page() as (page, errors):
        for report, thumbnails in zip(hostile_reports(tmp_path), (1, 0), strict=True):
            page.goto(report.as_uri())
            page.evaluate("window.rankvideoReport.renderAll()")
            headings = page.eval_on_selector_all("section.query h3", "headings => headings.map(h => h.textContent)")
            assert sorted(headings) == [f"{qid}: {qid} {HOSTILE_TEXT}" for qid in qids]
            docids = page.eval_on_selector_all("td.docid", "cells => cells.map(cell => cell.textContent)")
            assert sorted(docids) == sorted(HOSTILE_IDS * len(qids) * 2)  # the baseline's column and the run's
            answers = page.eval_on_selector_all(
                "details.explanation", "answers => answers.map(answer => answer.lastChild.textContent)"
            )
            assert answers == [HOSTILE_TEXT] * shown_videos * len(qids) * 2
            assert page.locator("td.thumbs img").count() == thumbnails * shown_videos * len(qids) * 2
            assert page.locator("td.thumbs .problem").count() == thumbnails * len(qids) * 2
            page.fill("#search", "hasOwnProperty")  # a docid, in no qid or query text
            assert page.text_content("#shown") == f"0 of {len(qids)} queries"
            page.fill("#search", "")
            assert page.text_content("#shown") == f"{len(qids)} of {len(qids)} queries"
        assert errors == []
