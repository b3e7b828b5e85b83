"""Planning: a run's top-`depth` pairs grouped by video, and their triage against the score store (outside
the shard, missing video, stored score, known bad video, or to score)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rankvideo_cli.errors import UsageError
from rankvideo_cli.pipeline.result import (
    BAD_VIDEO,
    CACHED,
    MISSING_VIDEO,
    OUTSIDE_SHARD,
    CandidateLike,
    Pair,
    PairOutcome,
    PipelineCounts,
    PipelineResult,
    PipelineTimings,
    ResolverLike,
)
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.pipeline.store import (
    BadVideo,
    PairKey,
    StoreContents,
    query_sha256,
)
from rankvideo_cli.scoring.base import PairScore
from rankvideo_cli.videos.identity import VideoIdentities
from rankvideo_cli.videos.index import TarMember


@dataclass
class VideoJob:
    """One video to decode, and the pairs it serves (sorted by qid, docid)."""

    key: str
    path: Path | TarMember
    pairs: list[tuple[Pair, str]]  # ((qid, docid), query text)
    # the distinct query texts of every pair of this video in the run, stored or not, in that order: they are
    # scored together, so each pair is scored in the batch it has in a run that scores the video whole (a pair's
    # score depends on its batch in the 7th digit); None: those of `pairs`
    batch_texts: list[str] | None = None


@dataclass
class WorkPlan:
    """Pairs within depth, grouped by video; built once per run, deterministic."""

    pairs: list[Pair]  # every pair within depth, in run order
    video_of: dict[Pair, str | None]  # resolved video key, None when missing
    paths: dict[str, Path | TarMember]  # video key -> path (a file, or a member of a .tar shard)
    queries: dict[Pair, str]


@dataclass(frozen=True)
class Pairs:
    """What a job scores: the first `depth` candidates of each query of `run`, with the query texts and where
    each docid's video is."""

    run: Mapping[str, Sequence[CandidateLike]]
    queries: Mapping[str, str]
    resolver: ResolverLike
    depth: int

    def plan(self) -> WorkPlan:
        return plan_pairs(self.run, self.queries, self.resolver, self.depth)


def plan_pairs(
    run: Mapping[str, Sequence[CandidateLike]],
    queries: Mapping[str, str],
    resolver: ResolverLike,
    depth: int,
) -> WorkPlan:
    """The pairs to score: the first `depth` candidates of each query (the run's first-stage order).

    Each docid is resolved once, whatever the number of queries it is a candidate for.
    """
    missing_queries = sorted(qid for qid in run if qid not in queries)
    if missing_queries:
        shown = ", ".join(missing_queries[:5]) + (", ..." if len(missing_queries) > 5 else "")
        raise UsageError(
            f"{len(missing_queries)} run queries have no text ({shown}); apply the missing-query policy before scoring"
        )
    resolved: dict[str, str | None] = {}
    paths: dict[str, Path | TarMember] = {}
    plan = WorkPlan(pairs=[], video_of={}, paths=paths, queries={})
    for qid, candidates in run.items():
        for candidate in itertools.islice(candidates, depth):
            docid = candidate.docid
            if docid not in resolved:
                path = resolver.resolve(docid)
                if path is None:
                    resolved[docid] = None
                else:
                    key = str(path)
                    resolved[docid] = key
                    paths[key] = path if isinstance(path, TarMember) else Path(path)
            pair = (qid, docid)
            plan.pairs.append(pair)
            plan.video_of[pair] = resolved[docid]
            plan.queries[pair] = queries[qid]
    return plan


def missing_video_shard_key(docid: str) -> str:
    """Candidates without a video are assigned to shards by docid, so per-shard counts add up."""
    return f"missing-video:{docid}"


@dataclass
class Triage:
    outcomes: dict[Pair, PairOutcome]
    scores: dict[Pair, PairScore]
    jobs: list[VideoJob]
    counts: PipelineCounts
    bad_videos: dict[str, BadVideo]

    def result(
        self, timings: PipelineTimings, fingerprints: tuple[str, str], store_dir: Path, settings: dict[str, Any]
    ) -> PipelineResult:
        """The run's result as triaged: `fingerprints` are the (model, sampling settings) its scores are keyed by;
        the caller adds what it scores."""
        model_fingerprint, settings_fingerprint = fingerprints
        return PipelineResult(
            scores=self.scores,
            outcomes=self.outcomes,
            bad_videos=self.bad_videos,
            counts=self.counts,
            timings=timings,
            model_fingerprint=model_fingerprint,
            settings_fingerprint=settings_fingerprint,
            store_dir=store_dir,
            settings=settings,
        )


def triage_pairs(
    plan: WorkPlan,
    contents: StoreContents,
    shard: Shard | None,
    retry_bad_videos: bool,
    identities: VideoIdentities,
) -> Triage:
    """Decide for every pair: outside the shard, missing video, cached, known bad, or to score.

    A stored score or bad-video record counts only for the same video content (`video_identity`): the
    identity of a video is looked up (a stat, or a 2 MiB read when the file changed) only when the store
    holds something for it."""
    outcomes: dict[Pair, PairOutcome] = {}
    scores: dict[Pair, PairScore] = {}
    to_score: dict[str, list[tuple[Pair, str]]] = {}
    in_run: dict[str, list[tuple[Pair, str]]] = {}  # every pair of a video in this shard, stored or not
    counts = PipelineCounts(pairs_in_run=len(plan.pairs), store_unreadable_lines=contents.unreadable_lines)
    bad_videos: dict[str, BadVideo] = {}
    missing_docids: set[str] = set()
    videos_in_shard: set[str] = set()
    videos_with_work: set[str] = set()
    for pair in plan.pairs:
        key = plan.video_of[pair]
        qid, docid = pair
        if shard is not None:
            owner_key = key if key is not None else missing_video_shard_key(docid)
            if not shard.owns(owner_key):
                outcomes[pair] = PairOutcome(OUTSIDE_SHARD, key)
                counts.pairs_outside_shard += 1
                continue
        if key is None:
            outcomes[pair] = PairOutcome(MISSING_VIDEO)
            counts.pairs_missing_video += 1
            missing_docids.add(docid)
            continue
        videos_in_shard.add(key)
        text = plan.queries[pair]
        in_run.setdefault(key, []).append((pair, text))
        counts.pairs_total += 1
        identity = identities.current(key, plan.paths[key]) if key in contents.videos_with_records else None
        cached = contents.scores.get(PairKey(qid, query_sha256(text), docid, key, identity)) if identity else None
        if cached is not None:
            scores[pair] = cached
            outcomes[pair] = PairOutcome(CACHED, key)
            counts.pairs_cached += 1
            continue
        known_bad = contents.bad_videos.get(key)
        if known_bad is not None and identity is not None and known_bad.video_id == identity and not retry_bad_videos:
            bad_videos[key] = known_bad
            outcomes[pair] = PairOutcome(BAD_VIDEO, key, known_bad.kind)
            counts.pairs_bad_video += 1
            continue
        videos_with_work.add(key)
        to_score.setdefault(key, []).append((pair, text))
    jobs = [
        VideoJob(key, plan.paths[key], sorted(to_score[key]), distinct_texts(sorted(in_run[key])))
        for key in sorted(to_score)
    ]
    counts.missing_videos = len(missing_docids)
    counts.videos_in_shard = len(videos_in_shard)
    counts.videos_known_bad = len(bad_videos)
    counts.bad_videos = len(bad_videos)
    counts.videos_cached = len(videos_in_shard - videos_with_work - set(bad_videos))
    counts.videos_to_decode = len(jobs)
    counts.pairs_to_score = sum(len(job.pairs) for job in jobs)
    return Triage(outcomes, scores, jobs, counts, bad_videos)


def reorder(result: PipelineResult, plan: WorkPlan) -> None:
    """Scores and outcomes in run order, whichever pairs came from the store: same result, same order."""
    result.outcomes = {pair: result.outcomes[pair] for pair in plan.pairs}
    result.scores = {pair: result.scores[pair] for pair in plan.pairs if pair in result.scores}


def distinct_texts(pairs: list[tuple[Pair, str]]) -> list[str]:
    return list(dict.fromkeys(text for _pair, text in pairs))
