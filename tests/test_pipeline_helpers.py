"""Test-only building blocks for the pipeline tests (no tests here): a deterministic fake scorer, a
directory resolver, candidates, and a counting sampler. The fake scorer never ships as a user option.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import torch

from rankvideo_cli.scoring.base import PairScore
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


def _softplus(value: float) -> float:
    return max(value, 0.0) + math.log1p(math.exp(-abs(value)))


def fake_pair_score(query: str, video: SampledVideo) -> PairScore:
    """Depends on the query text and on the decoded pixels, so a wrong or missing decode shows."""
    query_part = int(hashlib.sha256(query.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    frame_hash = hashlib.sha256(video.frames.contiguous().numpy().tobytes()).hexdigest()
    video_part = int(frame_hash[:8], 16) / 0xFFFFFFFF
    delta = 6.0 * (query_part - 0.5) + 2.0 * (video_part - 0.5)
    return PairScore.from_logprobs(-_softplus(-delta), -_softplus(delta))


@dataclass
class FakeScorer:
    """Deterministic stand-in for the Qwen3-VL scorer, recording every call.

    `seconds_per_pair` makes it slow enough to interrupt; `max_batch` raises an out-of-memory error when
    asked for more queries at once (what a real accelerator does).
    """

    name: str = "fake"
    seconds_per_pair: float = 0.0
    max_batch: int | None = None
    calls: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)

    def fingerprint(self) -> dict[str, str]:
        return {"model": f"test-{self.name}", "revision": "1", "dtype": "float32", "device": "cpu"}

    def score_video(self, queries: list[str], video: SampledVideo) -> list[PairScore]:
        if self.max_batch is not None and len(queries) > self.max_batch:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        self.calls.append((video.path, tuple(queries)))
        if self.seconds_per_pair:
            time.sleep(self.seconds_per_pair * len(queries))
        return [fake_pair_score(query, video) for query in queries]

    @property
    def pairs_scored(self) -> int:
        return sum(len(queries) for _path, queries in self.calls)


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


def test_the_wait_for_decoding_is_reported_with_its_fix_only_when_large():
    from pathlib import Path

    from rankvideo_cli.pipeline.result import (
        PipelineCounts,
        PipelineResult,
        PipelineTimings,
        decode_wait_advice,
        decode_wait_share,
    )

    def result(wait_s: float, score_s: float, decoded: int = 10) -> PipelineResult:
        return PipelineResult(
            scores={},
            outcomes={},
            bad_videos={},
            counts=PipelineCounts(videos_decoded=decoded),
            timings=PipelineTimings(wall_s=wait_s + score_s, wait_s=wait_s, score_s=score_s),
            model_fingerprint="m",
            settings_fingerprint="s",
            store_dir=Path("store"),
            settings={"decode_workers": 3},
        )

    assert decode_wait_share(result(30.0, 70.0).timings) == 0.3
    advice = decode_wait_advice(result(30.0, 70.0))
    assert advice is not None and "waited 30.0 s for decoded videos, 30% of its time, with 3 decode threads" in advice
    assert "--cpus-per-task" in advice and "--decode-workers" in advice and "rankvideo sample" in advice
    assert decode_wait_advice(result(10.0, 90.0)) is None  # 10%: the GPU was fed
    assert decode_wait_advice(result(30.0, 70.0, decoded=1)) is None  # one video: its decode is the start-up
    assert decode_wait_share(PipelineTimings()) == 0.0
