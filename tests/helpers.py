"""Helpers shared by the CLI tests that rerank the shipped sample (`sample_runs/`) and read its score store."""

from __future__ import annotations

import json
from pathlib import Path

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"


def rerank_args(output: Path, *extra: str) -> list[str]:
    """`rankvideo rerank` of the flat sample with the tiny model, writing the run to `output`."""
    return [
        "rerank",
        str(SAMPLE / "first_stage.trec"),
        str(SAMPLE / "queries.tsv"),
        "--videos",
        str(SAMPLE / "videos"),
        "--model",
        "tiny-random",
        "--output",
        str(output),
        *extra,
    ]


def score_records(store: Path) -> list[tuple[str, str]]:
    """(qid, docid) of every score record in a store directory, a crash's half-written tail skipped."""
    records = []
    for path in sorted(store.glob("scores*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("kind") == "score":
                records.append((record["qid"], record["docid"]))
    return records


def stored_rerank_args(output: Path, store: Path, *extra: str) -> list[str]:
    """`rerank_args` into the score store `store`, with one decode thread (a deterministic pace)."""
    return rerank_args(output, "--cache", str(store), "--decode-workers", "1", *extra)
