"""The report as one HTML page (Jinja2 templates in `templates/`): the overview table (a column per run) and each
run's charts, one section per query whose rows are rendered when it scrolls near (a `<template>` each, so a
2,500-query page opens at once), thumbnails embedded as data URIs, or written beside an `index.html` for large
reports.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rankvideo_cli.evaluation.measures import EvalReport
from rankvideo_cli.evaluation.tables import format_delta, format_p, format_value, report_dict
from rankvideo_cli.report.data import QuerySection, score_is_logit_delta
from rankvideo_cli.report.thumbnails import Thumbnails


@dataclass
class Chart:
    name: str  # unique on the page: the figure's id is chart-NAME, and each id inside the SVG starts with NAME
    caption: str
    svg: str


# Okabe and Ito's colours, one per run in the order given (a run's swatch in every heading, the same in each place)
RUN_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9")


@dataclass
class ShownRun:
    """A run as the page names it: its name, a letter (A, B...) for the narrow places, its colour, and which score
    columns its rows need."""

    name: str
    position: int
    has_model_scores: bool
    score_is_logit_delta: bool  # ranked by the model's score alone: one column says both

    @classmethod
    def of(cls, name: str, position: int, *, has_model_scores: bool, sections: Sequence[QuerySection]) -> ShownRun:
        return cls(name, position, has_model_scores, has_model_scores and score_is_logit_delta(sections, position))

    @property
    def letter(self) -> str:
        return _letters(self.position)

    @property
    def colour(self) -> str:
        return RUN_COLOURS[self.position % len(RUN_COLOURS)]


def _letters(position: int) -> str:
    """A, B, ... Z, AA, AB...: a label for any number of runs."""
    text = ""
    position += 1
    while position:
        position, rest = divmod(position - 1, 26)
        text = chr(ord("A") + rest) + text
    return text


def section_ids(sections: Sequence[QuerySection]) -> dict[str, str]:
    """qid -> the link to its section on the page (`#q-1`, `#q-2`... in the order given)."""
    return {section.qid: f"#q-{number}" for number, section in enumerate(sections, start=1)}


def _fmt(value: float | None) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.4f}"


def overview_rows(report: EvalReport, runs: Sequence[ShownRun]) -> list[dict[str, Any]]:
    """One row per measure: the baseline's aggregate, then per run its aggregate and against the baseline the
    delta, W/T/L and the p-values, the same numbers `rankvideo eval RUN... QRELS --baseline B` prints."""
    baseline = report.baseline
    comparisons = {(c.run, c.measure): c for c in report.comparisons}
    rows = []
    for measure in report.measures:
        cells = []
        for shown in runs:
            value = report.runs[shown.position].aggregate[measure]
            cell: dict[str, Any] = {"run": shown, "value": value, "text": format_value(report, measure, value)}
            comparison = comparisons.get((report.runs[shown.position].name, measure))
            if comparison is not None:
                cell.update(
                    delta=comparison.delta,
                    delta_text=format_delta(report, measure, comparison.delta),
                    delta_class="gain" if comparison.delta > 0 else "loss" if comparison.delta < 0 else "tie",
                    wtl=f"{comparison.wins}/{comparison.ties}/{comparison.losses}",
                    p_text=format_p(comparison.p_value),
                    p_corrected_text=format_p(comparison.p_value_corrected),
                )
            cells.append(cell)
        row: dict[str, Any] = {"measure": measure, "runs": cells}
        if baseline is not None:
            row.update(baseline_value=baseline.aggregate[measure],
                       baseline_text=format_value(report, measure, baseline.aggregate[measure]))  # fmt: skip
        rows.append(row)
    return rows


THUMBS = "thumbs"  # the folder of thumbnail files beside a report's index.html


def thumbnail_sources(
    strips: Mapping[str, Thumbnails], as_files: bool
) -> tuple[dict[str, dict[str, Any]], dict[str, bytes]]:
    """docid -> what the page's script shows: image sources (data URIs, or with `as_files` paths under
    `thumbs/`), the frame indices, where they came from, or the problem; and the files those paths name (path
    relative to the page -> JPEG bytes), for the caller to write beside the page."""
    shown: dict[str, dict[str, Any]] = {}
    files: dict[str, bytes] = {}
    for docid in sorted(strips):
        strip = strips[docid]
        if not strip.ok:
            shown[docid] = {"problem": strip.problem}
            continue
        sources = []
        for image, frame in zip(strip.images, strip.frame_indices, strict=True):
            if as_files:
                source = f"{THUMBS}/{hashlib.sha256(docid.encode()).hexdigest()[:20]}-{frame}.jpg"
                files[source] = image
            else:
                source = "data:image/jpeg;base64," + base64.b64encode(image).decode("ascii")
            sources.append(source)
        shown[docid] = {"images": sources, "frames": strip.frame_indices, "source": strip.source}
    return shown, files


# Inside a <script>, `</script` ends the element and `<!--` followed by `<script` makes the parser skip past the
# page's own script; JSON's \u escapes keep every such character out of the markup and mean the same to
# JSON.parse. U+2028/U+2029 are line ends to pre-2019 JavaScript, should the JSON ever be read as a literal.
_SCRIPT_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def _script_json(value: Any) -> str:
    """JSON safe inside a `<script>` element: no `<`, `>` or `&` (the only places they can be are strings)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, allow_nan=False).translate(_SCRIPT_ESCAPES)


def render_page(
    *,
    runs: Sequence[ShownRun],
    baseline_name: str | None,
    sections: Sequence[QuerySection],
    total_queries: int,
    top: int,
    evaluation: EvalReport | None,
    charts: Sequence[Sequence[Chart]],
    thumbnails: Mapping[str, dict[str, Any]],
) -> str:
    """The page; `charts` holds each run's, in the order of `runs`."""
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=PackageLoader("rankvideo_cli.report", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
    )
    template = environment.get_template("report.html.j2")
    return template.render(
        runs=runs,
        baseline_name=baseline_name,
        # a baseline row's moves, one per run: where that run put it
        baseline_move_headers=["in the run"] if len(runs) == 1 else [f"in {run.letter}" for run in runs],
        sections=sections,
        total_queries=total_queries,
        top=top,
        measure=evaluation.measures[0] if evaluation is not None else None,
        measures=evaluation.measures if evaluation is not None else [],
        overview=overview_rows(evaluation, runs) if evaluation is not None else [],
        judged_queries=len(evaluation.runs[0].values) if evaluation is not None else 0,
        correction=evaluation.correction if evaluation is not None else "",
        charts=charts,
        thumbnails_json=_script_json(thumbnails),
        evaluation_json=_script_json(report_dict(evaluation) if evaluation is not None else None),
        fmt=_fmt,
    )
