"""The end of a rerank or merge: the bad-video policy, the ranked run and raw scores written, the summary and
the evaluation against the first stage."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Sequence
from operator import itemgetter
from pathlib import Path

from rich.console import Console

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.evaluation.ranking import (
    BELOW_DEPTH,
    RERANKED,
    UNSCORED,
    RankedDoc,
    rerank,
)
from rankvideo_cli.io.atomic import atomic_write_text, write_output_chunks
from rankvideo_cli.io.runs import Run, iter_trec_chunks
from rankvideo_cli.jobs.preflight import OutputPlan
from rankvideo_cli.jobs.request import RerankJob
from rankvideo_cli.messages import plural, say
from rankvideo_cli.options import RankingOptions, VideoPolicy
from rankvideo_cli.pipeline.request import PreparedInputs
from rankvideo_cli.pipeline.result import (
    BAD_VIDEO,
    MISSING_VIDEO,
    PipelineResult,
    decode_wait_advice,
    decode_wait_share,
    summarize_bad_videos,
)


def drop_set(result: PipelineResult, ranking: RankingOptions) -> set[tuple[str, str]]:
    """The pairs the user asked to leave out of the run: those without a video, or with a bad one."""
    statuses = [MISSING_VIDEO] * (ranking.on_missing_video == VideoPolicy.drop)
    statuses += [BAD_VIDEO] * (ranking.on_bad_video == VideoPolicy.drop)
    return result.pairs_with(*statuses) if statuses else set()


def check_bad_video_policy(result: PipelineResult, on_bad_video: str) -> None:
    if on_bad_video == VideoPolicy.error and result.bad_videos:
        raise RankVideoError(
            f"{summarize_bad_videos(result)}; scores of the good videos are saved in {result.store_dir} "
            "(--on-bad-video keep or drop to write the run anyway)"
        )


def rank_result(run: Run, result: PipelineResult, ranking: RankingOptions) -> dict[str, list[RankedDoc]]:
    """The final ranking of a scored run: the bad-video policy checked, the pairs asked to be dropped left out."""
    check_bad_video_policy(result, ranking.on_bad_video)
    return rerank(
        run,
        result.model_scores(),
        depth=ranking.depth,
        interpolate=ranking.interpolate,
        normalization=ranking.normalization,
        drop=drop_set(result, ranking),
    )


def finish_run(
    job: RerankJob, outputs: OutputPlan, inputs: PreparedInputs, result: PipelineResult, console: Console
) -> dict[str, list[RankedDoc]]:
    """Rank, write the run (atomically) and the raw scores, print the summary and the evaluation."""
    ranked = rank_result(inputs.run, result, job.ranking)
    write_output_chunks(iter_trec_chunks(ranked, job.ranking.tag), outputs.output)
    if outputs.scores is not None:
        atomic_write_text(outputs.scores, scores_jsonl(result))
    print_summary(console, inputs, result, ranked, job.ranking, job.scorer.selection().reranker.name)
    if job.inputs.qrels is not None:
        evaluate_against_first_stage(ranked, inputs.run, job.inputs.qrels, job.inputs.measures, console)
    return ranked


def scores_jsonl(result: PipelineResult) -> str:
    lines = []
    for (qid, docid), score in sorted(result.scores.items()):
        outcome = result.outcomes.get((qid, docid))
        record = {"qid": qid, "docid": docid, "video": outcome.video if outcome else None, **score.to_dict()}
        lines.append(json.dumps(record, sort_keys=True))
    return "".join(line + "\n" for line in lines)


def print_summary(
    console: Console,
    inputs: PreparedInputs,
    result: PipelineResult,
    ranked: dict[str, list[RankedDoc]],
    ranking: RankingOptions,
    reranker: str,
) -> None:
    provenance = count_provenance(ranked)
    written = sum(provenance.values())
    dropped = inputs.run.pair_count - written
    counts = result.counts
    parts = [
        f"{plural(len(inputs.run), 'query', 'queries')}, {plural(inputs.run.pair_count, 'candidate')} in",
        f"{written} written ({provenance[RERANKED]} reranked, {provenance[UNSCORED]} unscored kept in "
        f"first-stage order, {provenance[BELOW_DEPTH]} below depth {ranking.depth})",
        f"{plural(counts.pairs_scored, 'pair')} scored now, {counts.pairs_cached} from the score store",
        f"{plural(counts.pairs_missing_video, 'pair')} without a video file ({ranking.on_missing_video})",
        f"{plural(counts.pairs_bad_video, 'pair')} with a bad video ({ranking.on_bad_video})",
    ]
    if counts.videos_fitted:
        parts.append(f"{plural(counts.videos_fitted, 'video')} sampled smaller to fit {reranker}'s token budget")
    parts.append(f"reranker {reranker}")
    if dropped:
        parts.append(f"{plural(dropped, 'candidate')} dropped as asked")
    if inputs.skipped_queries:
        parts.append(
            f"{plural(len(inputs.skipped_queries), 'query', 'queries')} without text kept in first-stage order "
            f"({', '.join(inputs.skipped_queries[:5])})"
        )
    say(console, "; ".join(parts))
    if result.bad_videos:
        say(console, summarize_bad_videos(result))
    report_decoding(result, console, reranker)


def report_decoding(result: PipelineResult, console: Console, reranker: str) -> None:
    """Where the decoded videos came from, how long the model waited for them, and the fix when too long (not
    with --quiet); and a frame cache that held none of them for `reranker`'s frames."""
    from rankvideo_cli.progress import QUIET, verbosity

    counts, timings = result.counts, result.timings
    if not counts.videos_decoded or verbosity() == QUIET:
        return
    from_cache = (
        f", {counts.videos_from_frame_cache} of them from the frame cache"
        + (
            f" ({plural(counts.frame_cache_corrupt, 'damaged entry', 'damaged entries')} decoded instead)"
            if counts.frame_cache_corrupt
            else ""
        )
        if result.settings.get("frame_cache")
        else ""
    )
    say(
        console,
        f"{plural(counts.videos_decoded, 'video')} sampled{from_cache}; the model waited "
        f"{timings.wait_s:.1f} s for them ({decode_wait_share(timings):.0%} of its time)",
    )
    frame_cache = result.settings.get("frame_cache")
    if frame_cache and not counts.videos_from_frame_cache:
        say(
            console,
            f"the frame cache {frame_cache} held none of these videos for {reranker}'s frames (each reranker's "
            f"have their own entries): fill it with `rankvideo sample ... --reranker {reranker}`",
        )
    advice = decode_wait_advice(result)
    if advice is not None:
        say(console, advice)


def evaluate_against_first_stage(
    ranked: dict[str, list[RankedDoc]], run: Run, qrels: Path, measures: Sequence[str] | None, console: Console
) -> None:
    """The reranked run against the first stage it came from, as a table on stderr."""
    from rankvideo_cli.evaluation.measures import evaluate
    from rankvideo_cli.evaluation.tables import render_table
    from rankvideo_cli.io.qrels import read_qrels

    report = evaluate(
        {qid: {doc.docid: doc.score for doc in docs} for qid, docs in ranked.items()},
        read_qrels(qrels),
        measures,
        baseline=run.scores(),
        run_name="reranked",
        baseline_name="first stage",
    )
    render_table(report, console)


def count_provenance(ranked: dict[str, list[RankedDoc]]) -> Counter[str]:
    """How many written lines are RERANKED, UNSCORED and BELOW_DEPTH."""
    return Counter(map(itemgetter(2), itertools.chain.from_iterable(ranked.values())))  # RankedDoc.provenance
