"""`rankvideo score` and `rankvideo explain`: one query against a few video files, with the model's score
(and, for explain, its answer)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.atomic import write_stdout
from rankvideo_cli.jobs.preflight import check_rankvideo_cache, check_regular_input
from rankvideo_cli.messages import say
from rankvideo_cli.scoring.base import Scorer
from rankvideo_cli.scoring.options import ScorerOptions
from rankvideo_cli.videos.config import SamplingConfig


def check_score_request(query: str, videos: Sequence[Path], scorer: ScorerOptions) -> None:
    """`rankvideo score`'s arguments, before the model loads (the scorer's options checked themselves)."""
    check_rankvideo_cache(scorer.model)
    if not query.strip():
        raise UsageError("--query is empty: give the text to score the videos against")
    for video in videos:
        check_regular_input(video, "VIDEO")


def score_videos(scorer: Scorer, query: str, videos: Sequence[Path], sampling: SamplingConfig) -> list[dict]:
    """One row per video: path, the model card's score fields, or the reason the video could not be scored.
    `sampling`: the reranker's frames (`ScorerOptions.sampling`); a path given twice is scored once."""
    from rankvideo_cli.scoring.reranker import score_each_video
    from rankvideo_cli.videos.container import VideoError

    outcomes = score_each_video(scorer, query, [str(path) for path in videos], sampling)
    rows: list[dict] = []
    for path in videos:
        outcome = outcomes[str(path)]
        if isinstance(outcome, VideoError):
            rows.append({"video": str(path), "error": str(outcome), "error_kind": outcome.kind})
        else:
            rows.append({"video": str(path), **outcome.to_dict()})
    return rows


def run_score(
    scorer: Scorer, query: str, videos: Sequence[Path], sampling: SamplingConfig, *, as_json: bool, console: Console
) -> int:
    """Print one row per video (table or JSON lines on stdout); returns the number of unscorable videos."""
    rows = score_videos(scorer, query, videos, sampling)
    if as_json:
        for row in rows:
            write_stdout(json.dumps(row, sort_keys=True) + "\n")
    else:
        table = Table(title=f"query: {query}", title_justify="left")
        # a path is data: folded, never cut to the terminal width, and never read as rich markup
        table.add_column("video", justify="left", overflow="fold")
        for column in ("logit_delta", "p_yes", "logprob_yes", "logprob_no"):
            table.add_column(column, justify="right")
        for row in rows:
            if "error" in row:
                table.add_row(escape(row["video"]), f"[red]{row['error_kind']}[/red]", "", "", "")
            else:
                table.add_row(
                    escape(row["video"]),
                    *(f"{row[key]:.4f}" for key in ("logit_delta", "p_yes", "logprob_yes", "logprob_no")),
                )
        Console(highlight=False).print(table)
    failures = [row for row in rows if "error" in row]
    for row in failures:
        say(console, row["error"])
    return len(failures)


def check_explain_request(options: ScorerOptions) -> None:
    """`explain` needs a model that writes text (the fake scorer has none) and a reranker whose answer is more
    than yes or no (refused before anything loads)."""
    from rankvideo_cli.scoring.fake import is_fake_model

    reranker = options.selection().reranker
    if not reranker.explains:
        raise UsageError(
            f"{reranker.name} answers only yes or no: it has no reasoning to show; `rankvideo score` gives its score"
        )
    if is_fake_model(options.model):
        raise UsageError(
            f"--model {options.model}: the fake scorer writes no explanation (it has no model); give a Qwen3-VL "
            "checkpoint, or tiny-random"
        )


def run_explain(
    scorer: Scorer,
    query: str,
    videos: Sequence[Path],
    settings,
    sampling: SamplingConfig,
    *,
    as_json: bool,
    console: Console,
) -> int:
    """`rankvideo explain`: the model's answer (its reasoning) and score for each video, as text blocks or JSON
    lines on stdout; returns the number of videos that could not be decoded."""
    from rankvideo_cli.scoring.generate import explain_video
    from rankvideo_cli.videos.container import VideoError
    from rankvideo_cli.videos.frames import sample_video

    failures = 0
    for path in videos:
        try:
            sampled = sample_video(path, sampling)
        except VideoError as error:
            failures += 1
            say(console, str(error))
            if as_json:
                write_stdout(json.dumps({"video": str(path), "error": str(error), "error_kind": error.kind}) + "\n")
            continue
        ((score, answer),) = explain_video(scorer, [query], sampled, settings)  # type: ignore[arg-type]
        if as_json:
            row = {
                "video": str(path),
                "query": query,
                "text": answer.text,
                "tokens": answer.tokens,
                "finish_reason": answer.finish_reason,
                "generation": settings.describe(),
                **score.to_dict(),
            }
            write_stdout(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
        else:
            write_stdout(
                f"== {path}\nlogit_delta {score.logit_delta:.4f}  p_yes {score.p_yes:.4f}  "
                f"({answer.finish_reason}, {answer.tokens} tokens)\n{answer.text}\n\n"
            )
    return failures
