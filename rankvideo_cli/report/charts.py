"""The report's charts, drawn by matplotlib as inline SVG (text kept as text, no fonts embedded, fixed ids and
no date: the same inputs give the same bytes), so the page needs no JavaScript library and no network.

Several charts share one page, so every id of a chart starts with the name it is given (`_svg`): matplotlib
numbers its elements per figure (`figure_1`, `patch_1`...), which would repeat from one SVG to the next.
Colours are Okabe and Ito's, told apart by colour-blind readers too, and never laid over each other: relevant
and non-relevant candidates are lines of their own or points side by side, each with its own line style or mark.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib loads only when a chart is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Okabe and Ito's palette: blue and vermillion stay apart in every kind of colour blindness.
GAIN, TIE, LOSS = "#0072B2", "#999999", "#D55E00"
RELEVANT, NOT_RELEVANT = "#0072B2", "#E69F00"
LABELLED_BARS = 40  # up to this many queries, each bar of the change chart carries its qid below it
ECDF_POINTS = 200  # steps drawn per line: an ECDF of thousands of scores looks the same and weighs far less


def _figure(width: float = 5.6, height: float = 2.8) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "rankvideo", "font.size": 9.5})
    figure, axes = plt.subplots(figsize=(width, height), layout="constrained")
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


_ID = re.compile(r'\bid="([^"]+)"')


def _svg(figure: Figure, prefix: str, titles: Mapping[str, str] | None = None) -> str:
    """The figure as an `<svg>` element whose ids all start with `prefix-` (references to them follow), and
    `titles` (link -> text) as the tooltip of each element that links there."""
    from matplotlib import pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None}, dpi=144)
    plt.close(figure)
    text = buffer.getvalue()
    text = text[text.index("<svg") :]  # the XML prolog and doctype do not belong inside HTML
    text = _rounded(text)
    defined = set(_ID.findall(text))

    def renamed(match: re.Match[str]) -> str:
        name = match.group(2)
        return f"{match.group(1)}{prefix}-{name}{match.group(3)}" if name in defined else match.group(0)

    text = re.sub(r'(\bid=")([^"]+)(")', renamed, text)
    text = re.sub(r"(url\(#)([^)]+)(\))", renamed, text)
    text = re.sub(r'(href="#)([^"]+)(")', renamed, text)
    # matplotlib opens every link in a new tab; a link to a section of this page belongs in this one
    text = re.sub(r'(<a xlink:href="#[^"]*") target="_blank"', r"\1", text)
    for link, title in (titles or {}).items():
        anchor = f'<a xlink:href="{html.escape(link)}">'
        text = text.replace(anchor, f"{anchor}<title>{html.escape(title)}</title>")
    return text


def _tenth(number: str) -> str:
    return f"{float(number):.1f}" if "." in number and len(number.split(".")[1]) > 1 else number


def _compact_path(data: str) -> str:
    """A path's data with coordinates to a tenth of a point, and a line along an axis as H or V: what matplotlib
    writes as `M 244.512 36.601 L 245.812 36.601` becomes `M244.5 36.6H245.8`. Paths with curves keep their
    commands, rounded."""
    tokens = data.split()
    if not set(token for token in tokens if token.isalpha()) <= {"M", "L", "z", "Z"}:
        return " ".join(token if token.isalpha() else _tenth(token) for token in tokens)
    parts: list[str] = []
    x = y = ""
    index = 0
    while index < len(tokens):
        command = tokens[index]
        if command in "zZ":
            parts.append("z")
            x = y = ""  # back at the subpath's start: nothing to shorten against
            index += 1
            continue
        new_x, new_y = _tenth(tokens[index + 1]), _tenth(tokens[index + 2])
        if command == "L" and new_y == y:
            parts.append(f"H{new_x}")
        elif command == "L" and new_x == x:
            parts.append(f"V{new_y}")
        else:
            parts.append(f"{command}{new_x} {new_y}")
        x, y = new_x, new_y
        index += 3
    return "".join(parts)


def _rounded(text: str) -> str:
    """Coordinates to a tenth of a point (matplotlib writes six decimals) and lines along an axis as H or V: half
    of a chart's bytes, and no screen shows the difference. Only path data and x/y attributes: never text, ids
    or embedded data."""
    text = re.sub(r' d="([^"]*)"', lambda match: f' d="{_compact_path(match.group(1))}"', text)
    return re.sub(r'\b(x|y)="(-?\d+\.\d+)"', lambda match: f'{match.group(1)}="{_tenth(match.group(2))}"', text)


def delta_chart(deltas: Mapping[str, float], measure: str, links: Mapping[str, str], prefix: str) -> str:
    """Per-query change of `measure`, sorted, one bar per query: gains blue, ties grey, losses vermillion. Each
    bar (and its qid, when there are few enough to print) links to the query's section (`links`: qid -> #id),
    with the qid and the change as its tooltip."""
    ordered = sorted(deltas.items(), key=lambda item: (-item[1], item[0]))
    figure, axes = _figure(height=3.0)
    values = [value for _qid, value in ordered]
    colours = [GAIN if value > 0 else LOSS if value < 0 else TIE for value in values]
    bars = axes.bar(range(len(values)), values, color=colours, width=0.85)
    titles = {}
    for bar, (qid, value) in zip(bars, ordered, strict=True):
        if qid in links:
            bar.set_url(links[qid])
            titles[links[qid]] = f"{qid}: Δ {measure} {value:+.4f}"
    axes.axhline(0, color="#424242", linewidth=0.8)
    axes.set_ylabel(f"Δ {measure}")
    if len(ordered) <= LABELLED_BARS:
        axes.set_xticks(range(len(ordered)), [qid for qid, _ in ordered], rotation=90, fontsize=8)
        for label, (qid, _value) in zip(axes.get_xticklabels(), ordered, strict=True):
            if qid in links:
                label.set_url(links[qid])
        axes.set_xlabel(f"queries, sorted by the change ({len(values)})")
    else:
        axes.set_xticks([])
        axes.set_xlabel(f"queries, sorted by the change ({len(values)}; hover a bar for its query)")
    wins = sum(value > 0 for value in values)
    losses = sum(value < 0 for value in values)
    axes.set_title(f"{wins} better, {len(values) - wins - losses} tied, {losses} worse", loc="left", fontsize=9.5)
    return _svg(figure, prefix, titles)


def _ecdf_steps(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """The empirical CDF of `values` at no more than ECDF_POINTS of them (evenly spaced in rank, the last
    included): x, and the share of values at or below x."""
    ordered = sorted(values)
    count = len(ordered)
    positions: Sequence[int]
    if count <= ECDF_POINTS:
        positions = range(count)
    else:
        positions = sorted({round(step * (count - 1) / (ECDF_POINTS - 1)) for step in range(ECDF_POINTS)})
    return [ordered[index] for index in positions], [(index + 1) / count for index in positions]


def score_ecdf_chart(relevant: Sequence[float], not_relevant: Sequence[float], score_name: str, prefix: str) -> str:
    """The ECDF of the score of judged-relevant (solid blue) and judged-non-relevant (dashed orange) candidates,
    as the RankVideo authors' visualize.py draws it: the further right the blue line, the better the model
    separates them."""
    figure, axes = _figure()
    for values, colour, style, label in (
        (not_relevant, NOT_RELEVANT, "--", "not relevant"),
        (relevant, RELEVANT, "-", "relevant"),
    ):
        if values:
            xs, ys = _ecdf_steps(values)
            axes.step(xs, ys, where="post", color=colour, linestyle=style, linewidth=1.6,
                      label=f"{label} ({len(values)})")  # fmt: skip
    axes.set_xlabel(score_name)
    axes.set_ylabel("share ≤ x")
    axes.set_ylim(0, 1.02)
    if relevant or not_relevant:
        axes.legend(frameon=False, loc="upper left")
    return _svg(figure, prefix)


def strip_chart(
    per_query: Sequence[tuple[str, Sequence[tuple[float, int]]]],
    score_name: str,
    links: Mapping[str, str],
    prefix: str,
) -> str:
    """One strip per query (in the order given): each judged candidate a short dash at its score, non-relevant
    in the strip's left half (thin, orange), relevant in its right half (thick, blue), so that no colour covers
    the other and position alone tells them apart; each qid (when few enough to print) links to its section.
    Dashes, not markers: a class's dashes are one SVG path (a marker is an element of its own each, and a
    strip chart of 100 queries holds thousands)."""
    figure, axes = _figure(height=3.0)
    for start, relevant, colour, width, label in (
        (-0.42, False, NOT_RELEVANT, 1.1, "not relevant"),
        (0.06, True, RELEVANT, 2.2, "relevant"),
    ):
        xs: list[float] = []
        ys: list[float] = []
        for position, (_qid, pairs) in enumerate(per_query):
            for value, grade in pairs:
                if (grade > 0) == relevant:
                    xs += [position + start, position + start + 0.36, math.nan]
                    ys += [value, value, math.nan]
        if xs:
            axes.plot(xs, ys, color=colour, linewidth=width, solid_capstyle="butt", label=f"{label} ({len(xs) // 3})")
    axes.set_ylabel(score_name)
    if 0 < len(per_query) <= LABELLED_BARS:
        axes.set_xticks(range(len(per_query)), [qid for qid, _ in per_query], rotation=90, fontsize=8)
        for tick, (qid, _pairs) in zip(axes.get_xticklabels(), per_query, strict=True):
            if qid in links:
                tick.set_url(links[qid])
    else:
        axes.set_xticks([])
    axes.set_xlabel(f"judged queries ({len(per_query)})")
    axes.set_xlim(-0.6, max(len(per_query), 1) - 0.4)
    if any(pairs for _qid, pairs in per_query):  # above the strips, where it covers none
        axes.legend(frameon=False, fontsize=8, loc="lower left", bbox_to_anchor=(0, 1), ncol=2, borderaxespad=0)
    return _svg(figure, prefix)


def rank_change_chart(pairs: Sequence[tuple[int, int]], top: int, prefix: str) -> str:
    """First-stage rank against reranked rank of the judged-relevant candidates; below the diagonal: moved up.
    Candidates that moved alike are one dot, larger for more of them."""
    figure, axes = _figure(height=3.4)
    if pairs:
        # dots as round-capped dashes of no length, one path per size: a marker would be an element each
        by_count: dict[int, list[tuple[int, int]]] = {}
        for point, count in sorted(Counter(pairs).items()):
            by_count.setdefault(min(count, 4), []).append(point)
        for count, points in sorted(by_count.items()):
            xs = [value for a, _ in points for value in (a, a * 1.0001, math.nan)]
            ys = [value for _, b in points for value in (b, b, math.nan)]
            axes.plot(xs, ys, color=RELEVANT, linewidth=3 + 1.5 * count, solid_capstyle="round")
        limit = max(max(a for a, _ in pairs), max(b for _, b in pairs))
        axes.plot([1, limit], [1, limit], color="#9e9e9e", linewidth=0.8)
        axes.axhline(top + 0.5, color="#bdbdbd", linewidth=0.6, linestyle="--")
        if limit > 50:
            axes.set_xscale("log")
            axes.set_yscale("log")
    axes.set_xlabel("first-stage rank")
    axes.set_ylabel("reranked rank")
    axes.set_title(f"judged-relevant candidates ({len(pairs)}; a larger dot: several alike)", loc="left", fontsize=9.5)
    return _svg(figure, prefix)
