"""Reading a rerank's inputs before any model loads, and the lines that say what in them was tolerated or missing."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from rankvideo_cli.commands.preflight import (
    check_tag,
)
from rankvideo_cli.errors import InputError, RankVideoError, UsageError
from rankvideo_cli.io.queries import find_missing_queries, read_queries
from rankvideo_cli.io.runs import Run, read_run
from rankvideo_cli.messages import say
from rankvideo_cli.pipeline.request import (
    PreparedInputs,
    RerankRequest,
    build_resolver,
    count_missing_videos,
)


def prepare_inputs(request: RerankRequest) -> PreparedInputs:
    """Read and validate every input before any model is loaded: bad input fails in a second, not an hour."""
    if request.videos_root is None:
        raise UsageError("--videos DIR is required: the directory holding the candidate videos")
    check_tag(request.tag)
    run = read_run(request.run_path)
    queries = read_queries(request.queries_path)
    missing = find_missing_queries(run, queries)
    if missing and request.missing_query == "error":
        raise InputError(
            request.run_path,
            run.first_line.get(missing[0]),
            f"query {missing[0]!r} is not in {request.queries_path} ({len(missing)} run queries have no text; "
            "--missing-query skip keeps them in first-stage order)",
        )
    resolver = build_resolver(request)
    skipped = set(missing)
    scored_run = {qid: candidates for qid, candidates in run.items() if qid not in skipped}
    return PreparedInputs(run, queries, scored_run, missing, resolver)


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


def report_missing_videos(request: RerankRequest, inputs: PreparedInputs, console: Console) -> int:
    """Report (or, with --on-missing-video error, refuse) the candidates without a video; their pair count."""
    missing_pairs, missing_docids = count_missing_videos(inputs, request.depth)
    if not missing_pairs:
        return 0
    rejected = inputs.resolver.resolver.rejected
    # a docid that cannot name a file under the root is never opened; say why, not just "missing"
    why = f"; {len(rejected)} of them rejected ({next(iter(rejected.values()))})" if rejected else ""
    examples = inputs.resolver.missing_examples
    tried = f"; e.g. {'; '.join(examples)}" if examples else ""
    if request.on_missing_video == "error":
        raise RankVideoError(
            f"{missing_docids} candidate videos are missing under {request.videos_root} "
            f"({missing_pairs} pairs{why}{tried}); --on-missing-video keep or drop to go on without them"
        )
    say(
        console,
        f"{missing_docids} candidate videos have no file under {request.videos_root} "
        f"({missing_pairs} pairs within depth{why}{tried}): {request.on_missing_video}",
    )
    return missing_pairs
