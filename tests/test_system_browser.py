"""The sample's two-run report in a real browser: Debian's Chromium, driven by Playwright: every section renders,
the page fits a 1400 px and a 390 px wide screen, a deep link lands on its section, and no error is logged.

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
from report_browser import MULTIVENT, RUN_A, RUN_B, browser_page, chromium_path, load_every_image, sample_report
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


def test_every_section_renders_the_baseline_and_both_runs_with_every_thumbnail(page) -> None:  # type: ignore[no-untyped-def]
    assert sorted(qids_in_order(page)) == ["q1", "q2", "q3", "q4"]
    widths = load_every_image(page)
    headings = page.eval_on_selector_all(
        "section.query", "sections => sections.map(s => Array.from(s.querySelectorAll('h4'), h => h.textContent))"
    )
    columns = ["baseline: first_stage.trec", f"A {RUN_A} (ranked by logit_delta: its score)", f"B {RUN_B}"]
    assert headings == [columns] * 4
    missing = page.locator("td.thumbs .problem").count()
    assert missing > 0  # the missing video is shown as such
    assert len(widths) == 4 * 3 * 10 * 4 - missing * 4  # 4 queries x 3 columns x 10 rows x 4 frames
    assert all(width > 0 for width in widths)
    # every chart of both runs is drawn at a readable size
    charts = page.eval_on_selector_all(
        "figure svg", "svgs => svgs.map(svg => [svg.closest('figure').id, svg.getBoundingClientRect().width])"
    )
    assert [name for name, _ in charts] == [
        f"chart-run{run}-{chart}" for run in (1, 2) for chart in ("delta", "ecdf", "strip", "ranks")
    ]
    assert all(width >= 460 for _, width in charts)


def test_sorting_by_either_runs_change_reorders_the_sections(page) -> None:  # type: ignore[no-untyped-def]
    deltas = {
        qid: [float(value) for value in values.split()]
        for qid, values in page.eval_on_selector_all(
            "section.query", "sections => sections.map(s => [s.dataset.qid, s.dataset.deltas])"
        )
    }
    gains_first = qids_in_order(page)
    assert gains_first == sorted(deltas, key=lambda qid: (-deltas[qid][0], qid))
    page.select_option("#sort", "delta-asc-0")
    assert qids_in_order(page) == sorted(deltas, key=lambda qid: (deltas[qid][0], qid))
    page.select_option("#sort", "delta-desc-1")
    assert qids_in_order(page) == sorted(deltas, key=lambda qid: (-deltas[qid][1], qid))
    assert [values[0] for values in deltas.values()] != [values[1] for values in deltas.values()]
    page.select_option("#sort", "qid")
    assert qids_in_order(page) == ["q1", "q2", "q3", "q4"]


def test_the_overview_shows_the_numbers_of_rankvideo_eval(page, report: Path) -> None:  # type: ignore[no-untyped-def]
    evaluated = subprocess.run(
        [sys.executable, "-m", "rankvideo_cli.cli", "eval", str(report.parent / RUN_A), str(report.parent / RUN_B),
         str(MULTIVENT / "judgments.jsonl"), "--baseline", str(MULTIVENT / "first_stage.trec"), "--format", "json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = json.loads(evaluated.stdout)
    *runs, baseline = expected["runs"]
    shown = page.eval_on_selector_all(
        "#measures tbody tr",
        """rows => rows.map(row => [row.dataset.measure,
            parseFloat(row.querySelector('td.baseline').dataset.value),
            Array.from(row.querySelectorAll('td.run'), cell => [parseFloat(cell.dataset.value),
                cell.querySelector('.wtl').textContent])])""",
    )
    assert [measure for measure, *_ in shown] == expected["measures"]
    comparisons = {(comparison["run"], comparison["measure"]): comparison for comparison in expected["comparison"]}
    for measure, theirs, cells in shown:
        assert theirs == baseline["aggregate"][measure]
        for run, (ours, wtl) in zip(runs, cells, strict=True):
            assert ours == run["aggregate"][measure]
            won = comparisons[(run["name"], measure)]
            assert wtl == f"{won['wins']}/{won['ties']}/{won['losses']}"


def test_the_search_box_filters_by_qid_and_text(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#search", "red ball")
    assert visible_qids(page) == ["q1"]
    assert page.text_content("#shown") == "1 of 4 queries"
    page.fill("#search", "Q3")
    assert visible_qids(page) == ["q3"]
    page.fill("#search", "")
    assert sorted(visible_qids(page)) == ["q1", "q2", "q3", "q4"]


# Elements wider than the screen that are not inside a box that scrolls them (a table's or a chart's)
OVERFLOWING = """() => Array.from(document.body.querySelectorAll("*")).filter(element => {
    for (let box = element.parentElement; box && box !== document.body; box = box.parentElement) {
        if (["auto", "scroll"].includes(getComputedStyle(box).overflowX)) return false;
    }
    const bounds = element.getBoundingClientRect();
    return bounds.width > 0 && (bounds.right > innerWidth + 0.5 || bounds.left < -0.5);
}).map(element => element.tagName + "." + element.className)"""


# Per thumbnail strip, the rows its frames sit on; per docid cell, the lines its text takes
STRIP_ROWS = """Array.from(document.querySelectorAll('td.thumbs .strip'), strip =>
    new Set(Array.from(strip.querySelectorAll('img'), image => Math.round(image.getBoundingClientRect().top))).size)"""
DOCID_LINES = """Array.from(document.querySelectorAll('td.docid'), cell => {
    const range = document.createRange(); range.selectNodeContents(cell);
    return new Set(Array.from(range.getClientRects(), rect => Math.round(rect.top))).size; })"""
IMAGE_BOXES = """Array.from(document.querySelectorAll('td.thumbs img'), image => {
    const box = image.getBoundingClientRect();
    return [box.left + scrollX, box.top + scrollY, box.width, box.height]; })"""


def test_two_runs_fit_a_1400_pixel_screen_without_scrolling_sideways(page) -> None:  # type: ignore[no-untyped-def]
    page.set_viewport_size({"width": 1400, "height": 900})
    page.evaluate("window.rankvideoReport.renderAll()")
    # the frames' boxes before the frames out of view have loaded (lazily) and after: a frame that loads moves nothing
    before = page.evaluate(IMAGE_BOXES)
    load_every_image(page)
    after = page.evaluate(IMAGE_BOXES)
    assert len(after) == len(before) and all(box == pytest.approx(was) for box, was in zip(after, before, strict=True))
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert page.evaluate(OVERFLOWING) == []
    # and no table needs its own scroll bar at that width: every column, frames included, is in view
    scrolled = "Array.from(document.querySelectorAll('.scroll')).filter(box => box.scrollWidth > box.clientWidth + 1)"
    assert page.evaluate(f"{scrolled}.length") == 0
    # "down 4" and its like stay on one line
    lines = page.evaluate(
        """Array.from(document.querySelectorAll('td.move.down, td.move.up')).map(cell => {
            const range = document.createRange(); range.selectNodeContents(cell);
            return new Set(Array.from(range.getClientRects(), rect => Math.round(rect.top))).size; })"""
    )
    assert lines and set(lines) == {1}
    # each strip of frames is one row, in run B's narrower table too (its frames shrink, to no less than 40 px)
    assert set(page.evaluate(STRIP_ROWS)) == {1}
    assert page.evaluate(f"{STRIP_ROWS}.length") == 4 * 3 * 10 - page.locator("td.thumbs .problem").count()
    sizes = page.evaluate(
        "Array.from(document.querySelectorAll('td.thumbs img'), image => image.getBoundingClientRect().width)"
    )
    assert min(sizes) >= 40
    # a docid never breaks inside: "_notInCorpus" once showed as "_notInCorp" over "us"
    assert set(page.evaluate(DOCID_LINES)) == {1}


def test_on_a_390_pixel_phone_only_tables_and_charts_scroll_sideways(report: Path) -> None:
    with browser_page(390, 844) as (page, errors):
        page.goto(report.as_uri())
        load_every_image(page)
        assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
        assert page.evaluate(OVERFLOWING) == []
        # a table keeps its strips of frames one row and its docids whole: it scrolls in its box instead
        assert set(page.evaluate(STRIP_ROWS)) == {1}
        assert set(page.evaluate(DOCID_LINES)) == {1}
        # the charts keep text a person can read: none drawn narrower than 460 px, inside a box that scrolls
        sizes = page.eval_on_selector_all("figure svg", "svgs => svgs.map(svg => svg.getBoundingClientRect().width)")
        assert sizes and min(sizes) >= 460
        font = page.evaluate(
            """Math.min(...Array.from(document.querySelectorAll('figure svg text'), text =>
                text.getBoundingClientRect().height).filter(height => height > 0))"""
        )
        assert font >= 7
        assert errors == []


def test_a_deep_link_lands_on_its_section_below_the_sticky_bar(report: Path) -> None:
    with browser_page(1400, 900) as (page, errors):
        page.goto(report.as_uri() + "#q-3")
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # thumbnails and lazy sections arrive: the section must not move

        def place() -> dict:
            return page.evaluate(
                """() => ({bar: document.getElementById('controls').getBoundingClientRect().bottom,
                    top: document.getElementById('q-3').getBoundingClientRect().top,
                    heading: document.querySelector('#q-3 h3').getBoundingClientRect().top})"""
            )

        landed = place()
        assert landed["bar"] - 1 <= landed["top"] <= landed["bar"] + 2  # at the top of what the bar leaves
        assert landed["heading"] >= landed["bar"]  # the heading is not under the bar
        # a bar of a chart links to its query's section and lands the same way
        target = page.get_attribute("#chart-run2-delta svg a", "xlink:href")
        page.click("#chart-run2-delta svg a")
        page.wait_for_timeout(200)
        clicked = page.evaluate(
            f"""() => ({{bar: document.getElementById('controls').getBoundingClientRect().bottom,
                top: document.getElementById({target[1:]!r}).getBoundingClientRect().top}})"""
        )
        assert clicked["bar"] - 1 <= clicked["top"] <= clicked["bar"] + 2
        assert page.evaluate("location.hash") == target
        assert errors == []


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
            assert answers == [HOSTILE_TEXT] * shown_videos * len(qids)  # the run's answers, in the run's rows
            assert page.locator("td.thumbs img").count() == thumbnails * shown_videos * len(qids) * 2
            assert page.locator("td.thumbs .problem").count() == thumbnails * len(qids) * 2
            page.fill("#search", "hasOwnProperty")  # a docid, in no qid or query text
            assert page.text_content("#shown") == f"0 of {len(qids)} queries"
            page.fill("#search", "")
            assert page.text_content("#shown") == f"{len(qids)} of {len(qids)} queries"
        assert errors == []
