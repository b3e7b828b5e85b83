"""A rerank's prepared inputs: the run and query texts read and checked, and the memoised docid -> video lookup;
what the rerank job, the dry run, merge and the PyTerrier reranker share."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rankvideo_cli.io.runs import Run
from rankvideo_cli.pipeline.plan import Pairs
from rankvideo_cli.videos.index import TarMember
from rankvideo_cli.videos.resolver import VideoResolver


class MemoResolver:
    """Resolves each docid once (a file-system stat on a cluster filesystem is not free), and keeps the first
    few missing docids' explanations (the paths tried) for the report."""

    def __init__(self, resolver: VideoResolver) -> None:
        self.resolver = resolver
        self._seen: dict[str, Path | TarMember | None] = {}
        self.missing_examples: list[str] = []  # the first few missing docids' explanations

    def resolve(self, docid: str) -> Path | TarMember | None:
        if docid not in self._seen:
            resolution = self.resolver.lookup(docid)
            self._seen[docid] = resolution.path
            if resolution.path is None and len(self.missing_examples) < 3:
                self.missing_examples.append(resolution.reason)
        return self._seen[docid]


@dataclass
class PreparedInputs:
    run: Run
    queries: dict[str, str]
    scored_run: dict[str, list]  # the run without the queries that have no text (--missing-query skip)
    skipped_queries: list[str]
    resolver: MemoResolver

    def pairs(self, depth: int) -> Pairs:
        """The pairs to score: the top `depth` candidates of every query that has a text."""
        return Pairs(self.scored_run, self.queries, self.resolver, depth)


def anything_to_score(depth: int, inputs: PreparedInputs, missing_pairs: int) -> bool:
    """Whether some pair within depth has a video file: when none has, no model is loaded (seconds, not a GPU
    start)."""
    within_depth = sum(min(depth, len(candidates)) for candidates in inputs.scored_run.values())
    return missing_pairs < within_depth


def count_missing_videos(inputs: PreparedInputs, depth: int) -> tuple[int, int]:
    """(candidates within depth without a video file, their distinct docids)."""
    within = Counter(candidate.docid for candidates in inputs.scored_run.values() for candidate in candidates[:depth])
    resolve = inputs.resolver.resolve
    missing = [docid for docid in within if resolve(docid) is None]  # each distinct docid resolved once
    return sum(within[docid] for docid in missing), len(missing)
