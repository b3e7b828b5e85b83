"""Debian's Chromium driven by Playwright (no browser download): what tests/test_system_browser.py opens the report
with, and the command that makes the README's screenshot of the sample's report:

    python tests/report_browser.py docs/report.png
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
MULTIVENT = REPO / "sample_runs" / "multivent"
# As the workplace's probe starts it: no sandbox (root), and none of the background connections a closed
# network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def browser_page(width: int = 1400, height: int = 1000) -> Iterator[tuple[Any, list[str]]]:
    """A fresh page of headless Chromium and the list its console errors and page errors are appended to."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            errors: list[str] = []
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            yield page, errors
        finally:
            browser.close()


def load_every_image(page: Any) -> list[int]:
    """Render every section, load every thumbnail now (not lazily), and return their natural widths."""
    page.evaluate("window.rankvideoReport.renderAll()")
    return page.evaluate(
        """async () => {
            const images = Array.from(document.images);
            images.forEach(image => { image.loading = "eager"; });
            await Promise.all(images.map(image => image.decode().catch(() => null)));
            return images.map(image => image.naturalWidth);
        }"""
    )


def sample_report(directory: Path) -> Path:
    """The report of the MultiVENT-shaped sample: stored made-up scores ranked by `rankvideo rank` (no model)."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_cli_report import write_scores

    scores = write_scores(MULTIVENT / "first_stage.trec", directory / "scores.jsonl")
    reranked = directory / "reranked.trec"
    rankvideo = [sys.executable, "-m", "rankvideo_cli.cli"]
    subprocess.run([*rankvideo, "rank", str(MULTIVENT / "first_stage.trec"), "--scores", str(scores), "-o",
                    str(reranked)], check=True)  # fmt: skip
    report = directory / "report.html"
    subprocess.run(
        [
            *rankvideo,
            "report",
            str(reranked),
            "--baseline",
            str(MULTIVENT / "first_stage.trec"),
            "--qrels",
            str(MULTIVENT / "judgments.jsonl"),
            "--queries",
            str(MULTIVENT / "queries.csv"),
            "--videos",
            str(MULTIVENT / "videos"),
            "--scores",
            str(scores),
            "-o",
            str(report),
        ],
        check=True,
    )
    return report


def screenshot(target: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        report = sample_report(Path(scratch))
        with browser_page(1400, 900) as (page, errors):
            page.goto(report.as_uri())
            load_every_image(page)
            page.screenshot(path=str(target), clip={"x": 0, "y": 0, "width": 1400, "height": 1500}, full_page=True)
            if errors:
                raise SystemExit(f"the page logged errors: {errors}")


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]))
