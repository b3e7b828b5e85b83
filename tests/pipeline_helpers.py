"""Test-only building blocks for the pipeline tests (no tests here): a directory resolver, candidates, and a
counting sampler. The fake scorer is the product's `fake-scorer` (`rankvideo_cli.scoring.fake`).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.frames import SampledVideo


@dataclass(frozen=True)
class Candidate:
    docid: str
    score: float
    first_stage_rank: int


def make_run(ranked: dict[str, list[str]]) -> dict[str, list[Candidate]]:
    """qid -> docids in first-stage order, as Candidates with descending scores."""
    return {
        qid: [Candidate(docid, float(len(docids) - rank), rank + 1) for rank, docid in enumerate(docids)]
        for qid, docids in ranked.items()
    }


class DirResolver:
    """docid -> DIR/docid.mp4 when that file exists."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, docid: str) -> Path | None:
        path = self.root / f"{docid}.mp4"
        return path if path.is_file() else None


class CountingSampler:
    """Wraps a sampler: how often each path was decoded, and how many decodes ran at once at most."""

    def __init__(self, sampler, delay_s: float = 0.0) -> None:
        self.sampler = sampler
        self.delay_s = delay_s
        self.decoded: Counter[str] = Counter()
        self.order: list[str] = []
        self.running = 0
        self.max_running = 0
        self._lock = threading.Lock()

    def __call__(self, path: Path, config: SamplingConfig) -> SampledVideo:
        with self._lock:
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            self.decoded[str(path)] += 1
            self.order.append(str(path))
        try:
            if self.delay_s:
                time.sleep(self.delay_s)
            return self.sampler(path, config)
        finally:
            with self._lock:
                self.running -= 1


def real_sampler():
    """The product's sampler (frames.sample_video)."""
    from rankvideo_cli.videos.frames import sample_video

    return sample_video
