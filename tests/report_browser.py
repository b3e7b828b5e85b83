"""Debian's Chromium driven by Playwright (no browser download): what tests/test_system_browser.py opens the report
with, and the command that makes the docs' screenshot of the sample's two-run report:

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


RUN_A, RUN_B = "rankvideo.trec", "qwen3-vl.trec"


def sample_report(directory: Path, *extra: str) -> Path:
    """The report of the MultiVENT-shaped sample comparing two rerankers' runs with the first stage, from stored
    made-up scores ranked by `rankvideo rank` (no model): `rankvideo.trec` ranked by its scores alone (its score
    is the logit_delta), `qwen3-vl.trec` by other scores interpolated with the first stage's."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_cli_report import write_scores

    rankvideo = [sys.executable, "-m", "rankvideo_cli.cli"]
    first_stage = str(MULTIVENT / "first_stage.trec")
    scores = {
        RUN_A: write_scores(MULTIVENT / "first_stage.trec", directory / "rankvideo.scores.jsonl"),
        RUN_B: write_scores(MULTIVENT / "first_stage.trec", directory / "qwen3-vl.scores.jsonl", salt="qwen"),
    }
    for name, interpolation in ((RUN_A, []), (RUN_B, ["--interpolate", "0.5"])):
        subprocess.run([*rankvideo, "rank", first_stage, "--scores", str(scores[name]), *interpolation, "--tag",
                        name.split(".")[0], "-o", str(directory / name)], check=True, capture_output=True)  # fmt: skip
    report = directory / "report.html"
    subprocess.run(
        [
            *rankvideo,
            "report",
            str(directory / RUN_A),
            str(directory / RUN_B),
            "--baseline",
            first_stage,
            "--qrels",
            str(MULTIVENT / "judgments.jsonl"),
            "--queries",
            str(MULTIVENT / "queries.csv"),
            "--videos",
            str(MULTIVENT / "videos"),
            "--scores",
            str(scores[RUN_A]),
            "--scores",
            str(scores[RUN_B]),
            "-o",
            str(report),
            *extra,
        ],
        check=True,
        capture_output=True,
    )
    return report


def screenshot(target: Path) -> None:
    """The two-run report at 1400 px: the overview, then a query's section (reached by its deep link) with the
    baseline and both runs, one picture above the other."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as scratch:
        report = sample_report(Path(scratch))
        with browser_page(1400, 900) as (page, errors):
            page.goto(report.as_uri())
            overview = Path(scratch) / "overview.png"
            bottom = page.evaluate("document.getElementById('charts').getBoundingClientRect().top + scrollY")
            page.screenshot(path=str(overview), clip={"x": 0, "y": 0, "width": 1400, "height": bottom}, full_page=True)
            page.evaluate("window.rankvideoReport.reveal('#q-1')")
            load_every_image(page)
            page.evaluate("window.rankvideoReport.reveal('#q-1')")
            section = Path(scratch) / "section.png"
            page.screenshot(path=str(section))
            if errors:
                raise SystemExit(f"the page logged errors: {errors}")
        parts = [Image.open(overview), Image.open(section)]
        picture = Image.new("RGB", (1400, sum(part.height for part in parts)), "white")
        picture.paste(parts[0], (0, 0))
        picture.paste(parts[1], (0, parts[0].height))
        picture.save(target, optimize=True)


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]))
