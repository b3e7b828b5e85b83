"""Reading a rerank's inputs before any model loads, and the lines that say what in them was tolerated or missing."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.io.queries import check_queries_cover_run, read_queries
from rankvideo_cli.io.runs import Run, read_run
from rankvideo_cli.jobs.request import RerankJob
from rankvideo_cli.messages import plural, say
from rankvideo_cli.options import RankingOptions, VideoPolicy, VideoSource
from rankvideo_cli.pipeline.request import MemoResolver, PreparedInputs, count_missing_videos


def prepare_inputs(job: RerankJob) -> PreparedInputs:
    """Read and validate every input before any model is loaded: bad input fails in a second, not an hour."""
    run = read_run(job.inputs.run)
    queries = read_queries(job.inputs.queries)
    missing = check_queries_cover_run(run, queries, job.inputs.queries, job.ranking.missing_query)
    skipped = set(missing)
    scored_run = {qid: candidates for qid, candidates in run.items() if qid not in skipped}
    return PreparedInputs(run, queries, scored_run, missing, MemoResolver(job.videos.resolver()))


def read_run_reporting(path: Path, console: Console) -> Run:
    """`read_run`, with the stderr line about what trec_eval 10.0 tolerated in it."""
    run = read_run(path)
    report_tolerated(console, run.tolerated.describe(run.source, 6))
    return run


def report_tolerated(console: Console, *lines: str | None) -> None:
    """One stderr line per input file that had lines trec_eval 10.0 tolerates and a strict reader would not."""
    for line in lines:
        if line:
            say(console, line)


def report_missing_videos(
    inputs: PreparedInputs, ranking: RankingOptions, videos: VideoSource, console: Console
) -> int:
    """Report (or, with `on_missing_video` error, refuse) the candidates without a video; their pair count."""
    missing_pairs, missing_docids = count_missing_videos(inputs, ranking.depth)
    if not missing_pairs:
        return 0
    rejected = inputs.resolver.resolver.rejected
    # a docid that cannot name a file under the root is never opened; say why, not just "missing"
    why = f"; {len(rejected)} of them rejected ({next(iter(rejected.values()))})" if rejected else ""
    examples = inputs.resolver.missing_examples
    tried = f"; e.g. {'; '.join(examples)}" if examples else ""
    root, policy = videos.videos, ranking.on_missing_video
    if policy == VideoPolicy.error:
        raise RankVideoError(
            f"{plural(missing_docids, 'candidate video is', 'candidate videos are')} missing under {root} "
            f"({plural(missing_pairs, 'pair')}{why}{tried}); --on-missing-video keep or drop to go on without them"
        )
    say(
        console,
        f"{plural(missing_docids, 'candidate video has', 'candidate videos have')} no file under {root} "
        f"({plural(missing_pairs, 'pair')} within depth{why}{tried}): {policy}",
    )
    return missing_pairs
