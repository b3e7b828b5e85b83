"""The report's charts, drawn by matplotlib as inline SVG (text kept as text, no fonts embedded, fixed ids and
no date: the same inputs give the same bytes), so the page needs no JavaScript library and no network."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # matplotlib loads only when a chart is drawn
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIN, TIE, LOSS = "#2e7d32", "#9e9e9e", "#c62828"
RELEVANT, NOT_RELEVANT = "#1565c0", "#ef6c00"


def _figure(width: float = 7.0, height: float = 2.6) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    matplotlib.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "rankvideo", "font.size": 9})
    figure, axes = plt.subplots(figsize=(width, height), layout="constrained")
    axes.spines[["top", "right"]].set_visible(False)
    return figure, axes


def _svg(figure: Figure) -> str:
    from matplotlib import pyplot as plt

    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    plt.close(figure)
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # the XML prolog and doctype do not belong inside HTML


def delta_chart(deltas: Mapping[str, float], measure: str) -> str:
    """Per-query change of `measure`, sorted, one bar per query: gains green, ties grey, losses red."""
    ordered = sorted(deltas.items(), key=lambda item: (-item[1], item[0]))
    figure, axes = _figure()
    values = [value for _qid, value in ordered]
    colours = [WIN if value > 0 else LOSS if value < 0 else TIE for value in values]
    axes.bar(range(len(values)), values, color=colours, width=0.9)
    axes.axhline(0, color="#424242", linewidth=0.8)
    axes.set_xlabel(f"queries, sorted by the change ({len(values)})")
    axes.set_ylabel(f"Δ {measure}")
    axes.set_xticks([])
    wins = sum(value > 0 for value in values)
    losses = sum(value < 0 for value in values)
    axes.set_title(f"{wins} better, {len(values) - wins - losses} tied, {losses} worse", loc="left")
    return _svg(figure)


def score_distribution_chart(relevant: Sequence[float], not_relevant: Sequence[float], score_name: str) -> str:
    """Histograms of the score for judged-relevant and judged-non-relevant candidates."""
    figure, axes = _figure()
    values = [*relevant, *not_relevant]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    bins = [low + (high - low) * step / 30 for step in range(31)] if high > low else 10
    if not_relevant:
        axes.hist(not_relevant, bins=bins, alpha=0.6, color=NOT_RELEVANT, label=f"not relevant ({len(not_relevant)})")
    if relevant:
        axes.hist(relevant, bins=bins, alpha=0.6, color=RELEVANT, label=f"relevant ({len(relevant)})")
    axes.set_xlabel(score_name)
    axes.set_ylabel("candidates")
    if values:
        axes.legend(frameon=False)
    return _svg(figure)


def rank_change_chart(pairs: Sequence[tuple[int, int]], top: int) -> str:
    """First-stage rank against reranked rank of the judged-relevant candidates; below the diagonal: moved up."""
    figure, axes = _figure(4.2, 3.4)
    if pairs:
        axes.scatter([a for a, _ in pairs], [b for _, b in pairs], s=12, color=RELEVANT, alpha=0.7)
        limit = max(max(a for a, _ in pairs), max(b for _, b in pairs))
        axes.plot([1, limit], [1, limit], color="#9e9e9e", linewidth=0.8)
        axes.axhline(top + 0.5, color="#bdbdbd", linewidth=0.6, linestyle="--")
        if limit > 50:
            axes.set_xscale("log")
            axes.set_yscale("log")
    axes.set_xlabel("first-stage rank")
    axes.set_ylabel("reranked rank")
    axes.set_title(f"judged-relevant candidates ({len(pairs)})", loc="left")
    return _svg(figure)
