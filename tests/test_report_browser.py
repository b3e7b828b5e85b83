"""The sample's report in a real browser: Debian's Chromium, driven by Playwright.

CI installs Chromium (`.ci/run`) and sets RANKVIDEO_REQUIRE_BROWSER=1, which turns the skip below into a
failure: without a browser nobody has seen the page work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from report_browser import MULTIVENT, browser_page, chromium_path, load_every_image, sample_report

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
