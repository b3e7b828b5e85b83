"""`rankvideo rank`: a run reranked with stored scores exactly as `rerank` ranks, with no model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from rankvideo_cli.evaluation.ranking import (
    BELOW_DEPTH,
    RERANKED,
    UNSCORED,
    RankedDoc,
    rerank,
)
from rankvideo_cli.io.atomic import write_output_chunks
from rankvideo_cli.io.runs import iter_trec_chunks
from rankvideo_cli.jobs.finish import (
    count_provenance,
    evaluate_against_first_stage,
)
from rankvideo_cli.jobs.inputs import read_run_reporting
from rankvideo_cli.jobs.preflight import Named, check_output_file
from rankvideo_cli.messages import plural, say
from rankvideo_cli.options import RankingOptions


def run_rank(
    run_path: Path,
    scores_path: Path,
    ranking: RankingOptions,
    *,
    reference_model: str | None = None,
    output: Path | None = None,
    qrels: Path | None = None,
    measures: Sequence[str] | None = None,
    console: Console | None = None,
) -> dict[str, list[RankedDoc]]:
    """`rankvideo rank`: a run reranked with stored scores (a `--scores` JSONL, or the reference's per-video
    files), exactly as `rerank` ranks (depth, unscored tail, interpolation, tie-consistent scores); no model."""
    from rankvideo_cli.evaluation import fusion

    console = console if console is not None else Console(stderr=True, highlight=False)
    sources = [Named("the run", run_path), Named("--scores", scores_path)]
    if qrels is not None:
        from rankvideo_cli.evaluation.measures import check_measures

        check_measures(measures)
        sources.append(Named("--qrels", qrels))
    check_output_file(output, sources)
    run = read_run_reporting(run_path, console)
    model_scores = fusion.read_model_scores(scores_path, reference_model)
    ranked = rerank(
        run, model_scores, depth=ranking.depth, interpolate=ranking.interpolate, normalization=ranking.normalization
    )
    write_output_chunks(iter_trec_chunks(ranked, ranking.tag), output)
    provenance = count_provenance(ranked)
    outside = sum(1 for qid, _docid in model_scores if qid not in run)
    say(
        console,
        f"{plural(len(run), 'query', 'queries')}, {plural(run.pair_count, 'candidate')}; {provenance[RERANKED]} "
        "reranked with the "
        f"stored scores, {provenance[UNSCORED]} within depth {ranking.depth} without a score kept in first-stage "
        f"order, {provenance[BELOW_DEPTH]} below depth"
        + (
            f"; {plural(outside, 'stored score is', 'stored scores are')} for queries not in the run (ignored)"
            if outside
            else ""
        ),
    )
    if qrels is not None:
        evaluate_against_first_stage(ranked, run, qrels, measures, console)
    return ranked
