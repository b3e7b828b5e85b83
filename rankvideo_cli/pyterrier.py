"""RankVideo as a PyTerrier reranker: `first_stage % 100 >> RankVideoReranker(videos="/data/videos")`; public as
`rankvideo.pyterrier`.

A result-to-result `pt.Transformer` (as pyterrier_t5's MonoT5): it takes a result frame (`qid`, `query`,
`docno`, `score`, `rank`) and returns the same rows rescored and re-ranked by the model, through the very code
of `rankvideo rerank`: the same video resolution, frame sampling, video-major scheduling, score store (so a
second `pt.Experiment` reuses the scores instead of computing them again) and missing/bad-video policies. Rows
it could not score are kept after the scored rows of their query, in first-stage order, and counted on stderr;
the scores it writes reproduce its order under trec_eval's tie rule, as the CLI's run file does.

Only PyTerrier's transformer API is used: no Java, no index (`pip install -e '.[pyterrier]'`). `read_topics` reads
a query file as `rankvideo rerank` does, into PyTerrier's topics frame: `pt.io.read_topics` has no reader for a
header row (its single-line format takes `qid<TAB>text` for a query) nor for MultiVENT's CSV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

try:
    import pyterrier as pt
except ImportError as error:  # pragma: no cover - the message is the point (tests/test_pyterrier.py, in a subprocess)
    raise ImportError(
        "rankvideo.pyterrier needs PyTerrier: pip install 'rankvideo-cli[pyterrier]' (or -e '.[pyterrier]')"
    ) from error
import pandas as pd
from rich.console import Console

from rankvideo_cli.errors import UsageError
from rankvideo_cli.io.queries import read_queries
from rankvideo_cli.io.runs import Run, run_from_scores
from rankvideo_cli.jobs.finish import print_summary, rank_result
from rankvideo_cli.jobs.inputs import report_missing_videos
from rankvideo_cli.jobs.preflight import check_writable_directory
from rankvideo_cli.jobs.rerank import NothingToScore, score_here
from rankvideo_cli.messages import shorten
from rankvideo_cli.options import DecodeOptions, RankingOptions, VideoSource, from_values, optional_path
from rankvideo_cli.pipeline.request import MemoResolver, PreparedInputs, anything_to_score
from rankvideo_cli.pipeline.store import ScoreStore
from rankvideo_cli.scoring.base import INFERENCE_PROMPT
from rankvideo_cli.scoring.deferred import DeferredScorer
from rankvideo_cli.scoring.loading import check_model_available
from rankvideo_cli.scoring.options import DEFAULT_MODEL, ScorerOptions

if TYPE_CHECKING:
    from rankvideo_cli.evaluation.ranking import RankedDoc
    from rankvideo_cli.pipeline.result import PipelineResult
    from rankvideo_cli.scoring.base import Scorer

SOURCE = "<pyterrier results>"  # how messages name the result frame (there is no file)


class RankVideoReranker(pt.Transformer):
    """Rescore and re-rank a result frame with RankVideo.

    `videos`, `video_pattern`, `multivent`, `video_map`: where a docno's video is, as `rerank --videos ...`.
    `model`, `revision`, `cache_dir`, `dtype`, `device`, `attn_implementation`, `score_mode`, `batch_size`, `prompt`,
    `prefix_cache`, `reranker`, `instruction`: the model, as for `rerank` (`"tiny-random"` is the meaningless test
    model, and says so; `prompt="training"` is experimental; `reranker` None: chosen by the model's hub id,
    `"qwen3-vl-reranker"` for Qwen/Qwen3-VL-Reranker-2B/-8B). `depth`, `interpolate`,
    `normalization`, `on_missing_video`, `on_bad_video`: the ranking, as for `rerank`. `cache`: the score store
    directory (default `./rankvideo-scores`, as `rerank` to stdout). The model loads once, on the first frame
    that has a video to score.
    """

    def __init__(
        self,
        videos: str | Path,
        *,
        model: str = DEFAULT_MODEL,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        dtype: str | None = None,
        device: str | None = None,
        attn_implementation: str | None = None,
        score_mode: str = "full",
        batch_size: int | None = None,
        prompt: str = INFERENCE_PROMPT,
        prefix_cache: bool = True,
        reranker: str | None = None,
        instruction: str | None = None,
        video_pattern: str = "{docid}.mp4",
        multivent: bool = False,
        video_map: str | Path | None = None,
        depth: int = 100,
        interpolate: float | None = None,
        normalization: str = "minmax",
        on_missing_video: str = "keep",
        on_bad_video: str = "keep",
        cache: str | Path = "rankvideo-scores",
        decode_workers: int | None = None,
        prefetch: int | None = None,
        frames_cache: str | Path | None = None,
        retry_bad_videos: bool = False,
        verbose: bool = True,
    ) -> None:
        self.videos = VideoSource(Path(videos), video_pattern, multivent, optional_path(video_map))
        self.ranking = RankingOptions(depth, interpolate, normalization, on_missing_video, on_bad_video)
        self.decode = DecodeOptions(decode_workers, prefetch, optional_path(frames_cache), retry_bad_videos)
        hub_cache = str(cache_dir) if cache_dir is not None else None
        # the model's keywords are its fields
        self.scorer_options = from_values(ScorerOptions, {**locals(), "cache_dir": hub_cache})
        self.scorer_options.check()
        self.store_dir = check_writable_directory(cache, "cache")
        self.console = Console(stderr=True, highlight=False, quiet=not verbose)
        self.last_result: PipelineResult | None = None  # counts and timings of the latest transform
        self._scorer: Scorer | None = None

    def __repr__(self) -> str:
        return f"RankVideoReranker({self.scorer_options.model!r}, videos={str(self.videos.videos)!r})"

    def transform(self, inp: pd.DataFrame) -> pd.DataFrame:
        run, queries = results_to_run(inp)
        if not run:
            return inp.iloc[0:0].copy()
        inputs = PreparedInputs(run, queries, run, [], MemoResolver(self.videos.resolver()))
        missing_pairs = report_missing_videos(inputs, self.ranking, self.videos, self.console)
        needs_model = anything_to_score(self.ranking.depth, inputs, missing_pairs)
        if needs_model and self._scorer is None:
            check_model_available(self.scorer_options)  # a model that cannot load leaves no store file behind
        scorer = self._load_scorer() if needs_model else NothingToScore()
        with ScoreStore(self.store_dir) as store:
            sampling = self.scorer_options.sampling()
            result = score_here(inputs, self.ranking.depth, self.decode, sampling, store, scorer, self.console)
        self.last_result = result
        ranked = rank_result(run, result, self.ranking)
        print_summary(self.console, inputs, result, ranked, self.ranking, self.scorer_options.selection().reranker.name)
        return ranked_to_results(ranked, inp)

    def _load_scorer(self) -> Scorer:
        if self._scorer is None:
            self._scorer = DeferredScorer(self.scorer_options)  # loads the weights only when a pair needs scoring
        return self._scorer


def read_topics(path: str | Path) -> pd.DataFrame:
    """A query file (TSV with or without a header row, MultiVENT's `Query_id,query` CSV, JSON lines) as PyTerrier's
    topics frame (`qid`, `query`, as text), read by the reader `rankvideo rerank` uses: the same queries, the same
    texts, the same one-line errors."""
    queries = read_queries(path)
    return pd.DataFrame({"qid": list(queries), "query": list(queries.values())}, dtype=str)


def results_to_run(frame: pd.DataFrame) -> tuple[Run, dict[str, str]]:
    """A result frame as rerank's inputs: the run (first-stage order: score descending, then docno descending,
    as trec_eval) and the query texts. `UsageError` for what a run file could not hold either."""
    missing = [column for column in ("qid", "query", "docno") if column not in frame.columns]
    if "score" not in frame.columns and "rank" not in frame.columns:
        missing.append("score (or rank)")
    if missing:
        raise UsageError(f"RankVideoReranker needs a result frame with {', '.join(missing)} (it has {list(frame)})")
    qids = frame["qid"].astype(str).tolist()
    docnos = frame["docno"].astype(str).tolist()
    # no score column: the rank says the first-stage order (rank 0 first)
    scores = frame["score"] if "score" in frame.columns else -frame["rank"]
    rows: dict[str, dict[str, float]] = {}
    for position, (qid, docno, score) in enumerate(zip(qids, docnos, scores.astype(float).tolist(), strict=True)):
        if not math.isfinite(score):
            raise UsageError(f"result row {position} ({qid}, {docno}): score must be finite, got {score!r}")
        docs = rows.setdefault(qid, {})
        if docno in docs:
            raise UsageError(f"result row {position}: ({qid}, {docno}) appears twice")
        docs[docno] = score
    queries: dict[str, str] = {}
    for qid, text in zip(qids, frame["query"].astype(str).tolist(), strict=True):
        if queries.setdefault(qid, text) != text:
            first, second = shorten(queries[qid]), shorten(text)
            raise UsageError(f"query {qid!r} has two texts in the result frame: {first!r} and {second!r}")
    return run_from_scores(SOURCE, rows), queries


def ranked_to_results(ranked: dict[str, list[RankedDoc]], frame: pd.DataFrame) -> pd.DataFrame:
    """The final ranking as a result frame: every kept row of `frame` with its new `score` and `rank` (0-based,
    PyTerrier's convention), each query's rows in the new order; the frame's other columns kept."""
    order: list[tuple[str, str, float, int]] = [
        (qid, doc.docid, doc.score, position) for qid in sorted(ranked) for position, doc in enumerate(ranked[qid])
    ]
    new = pd.DataFrame(order, columns=["qid", "docno", "score", "rank"])
    others = frame.drop(columns=[column for column in ("score", "rank") if column in frame.columns])
    others = others.assign(qid=others["qid"].astype(str), docno=others["docno"].astype(str))
    merged = new.merge(others, on=["qid", "docno"], how="left", validate="one_to_one")
    columns: Sequence[str] = [*frame.columns, *(c for c in ("score", "rank") if c not in frame.columns)]
    return merged[list(columns)].reset_index(drop=True)
