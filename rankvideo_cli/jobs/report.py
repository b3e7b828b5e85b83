"""`rankvideo report`: a web page of what the rerankers did, query by query, with the frames the model saw.

Steps: check every option and the output location; read the runs, the baseline, the qrels, the queries, each
run's scores and explanations (any of them bad: one line, exit 2, nothing written); evaluate as `rankvideo eval`
does, every run against the baseline; choose the queries; make the thumbnails (frame cache, else PyAV, in
threads); draw each run's charts; write the page atomically (into a directory: the page and its thumbnails,
swapped in together). No model is loaded and torch is never imported.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from rankvideo_cli.errors import InputError, RankVideoError, UsageError
from rankvideo_cli.io.atomic import atomic_write_text, write_stdout
from rankvideo_cli.io.runs import Run
from rankvideo_cli.io.text import display_name
from rankvideo_cli.jobs.eval import check_shared_queries, run_names
from rankvideo_cli.jobs.inputs import read_run_reporting, report_tolerated
from rankvideo_cli.jobs.preflight import (
    Named,
    check_no_collisions,
    check_output_file,
    check_writable_directory,
)
from rankvideo_cli.messages import plural, say
from rankvideo_cli.options import VideoSource, at_least
from rankvideo_cli.pipeline.request import MemoResolver
from rankvideo_cli.progress import StepProgress
from rankvideo_cli.report.data import QuerySection, build_sections, read_explanations, select_queries
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.index import TarMember

if TYPE_CHECKING:
    from rankvideo_cli.evaluation.measures import EvalReport
    from rankvideo_cli.report.page import Chart, ShownRun
    from rankvideo_cli.report.thumbnails import Thumbnails

INDEX = "index.html"


@dataclass
class ReportRequest:
    run_paths: Sequence[Path]  # the runs compared, in the order their columns show
    baseline_path: Path | None = None
    qrels_path: Path | None = None
    queries_path: Path | None = None
    videos: VideoSource | None = None  # None: no thumbnails
    frames_cache: Path | None = None
    # Each run's --scores and --explanations: `RUN=FILE` names the run (as given), plain files go to the other
    # runs in order (see `files_per_run`).
    scores: Sequence[str | Path] = ()
    reference_model: str | None = None
    explanations: Sequence[str | Path] = ()
    measures: Sequence[str] | None = None
    correction: str = "holm"
    top: int = 10
    thumbnails: int = 4
    qids: Sequence[str] = ()
    limit: int | None = None
    decode_workers: int | None = None
    output: Path | None = None  # a file, `-`/None (stdout), or with `into_directory` the directory of index.html
    into_directory: bool = False  # `-o DIR/` (or an existing directory): index.html and thumbs/ in it
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # the reranker's frames, for the thumbnails


@dataclass
class ReportResult:
    queries: int
    videos: int
    from_frame_cache: int = 0
    decoded: int = 0
    problems: dict[str, int] = field(default_factory=dict)
    written: Path | None = None
    bytes: int = 0


def output_directory(request: ReportRequest) -> Path | None:
    """The directory a report goes into with its thumbnails beside it, or None for one self-contained file."""
    if request.output is None or str(request.output) == "-":
        return None
    return Path(request.output) if request.into_directory or Path(request.output).is_dir() else None


def validate_report(request: ReportRequest) -> None:
    """Every option and the output location, before any input is read."""
    missing = [name for name in ("jinja2", "matplotlib") if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(
            f"rankvideo report needs {' and '.join(missing)}: pip install 'rankvideo-cli[report]' (or -e '.[report]')"
        )
    at_least("top", request.top)
    at_least("thumbnails", request.thumbnails, minimum=0)
    at_least("limit", request.limit)
    at_least("decode_workers", request.decode_workers)
    if request.qids and request.limit is not None:
        raise UsageError("--qid and --limit both choose the queries: give one of them")
    if request.measures and request.qrels_path is None:
        raise UsageError("--measure needs --qrels (the judgments the measures are computed from)")
    if request.qrels_path is not None:
        from rankvideo_cli.evaluation.measures import CORRECTIONS, check_measures

        check_measures(request.measures)
        if request.correction not in CORRECTIONS:
            raise UsageError(f"--correction must be one of {', '.join(CORRECTIONS)}, got {request.correction!r}")
    if request.frames_cache is not None:
        from rankvideo_cli.videos.frame_cache import check_frame_cache

        if request.videos is None:
            raise UsageError("--frames-cache needs --videos (the cache is keyed by each video file's content)")
        check_frame_cache(request.frames_cache)
    if not request.run_paths:
        raise UsageError("give at least one run to show")
    scores = files_per_run("--scores", request.scores, request.run_paths)
    explanations = files_per_run("--explanations", request.explanations, request.run_paths)
    paths = [
        *(("the run", path) for path in request.run_paths),
        ("--baseline", request.baseline_path),
        ("--qrels", request.qrels_path),
        ("--queries", request.queries_path),
        *(("--scores", path) for path in scores),
        *(("--explanations", path) for path in explanations),
        ("--video-map", request.videos.video_map if request.videos is not None else None),
    ]
    inputs = [Named(option, Path(path)) for option, path in paths if path is not None]
    if sum(str(named.path) == "-" for named in inputs) > 1:
        raise UsageError("only one input can be read from stdin (-)")
    directory = output_directory(request)
    if directory is not None:
        check_writable_directory(directory, "-o")
        check_no_collisions(inputs, [Named("-o", directory / INDEX)])
    else:
        check_output_file(request.output, inputs)


def files_per_run(option: str, values: Sequence[str | Path], run_paths: Sequence[Path]) -> list[Path | None]:
    """Each run's file of a per-run option (`--scores`, `--explanations`), None where it has none: `RUN=FILE`
    names its run as the command line gave it (or by its file name); plain files go to the other runs in their
    order, one each (none at all is fine: those runs have no such file). Anything else is a `UsageError`."""
    runs = [str(path) for path in run_paths]
    names = [Path(run).name for run in runs]
    chosen: list[Path | None] = [None] * len(runs)
    named: set[int] = set()
    plain: list[Path] = []
    for value in map(str, values):
        run, equals, file = value.partition("=")
        position = None
        if equals:
            position = runs.index(run) if run in runs else names.index(run) if run in names else None
        if file and position is not None:
            if position in named:
                raise UsageError(f"{option}: two files for the run {run}")
            named.add(position)
            chosen[position] = Path(file)
        elif equals and not Path(value).exists():
            raise UsageError(f"{option} {value}: {run!r} is not one of the runs ({', '.join(runs)}) nor a file")
        else:
            plain.append(Path(value))
    rest = [position for position in range(len(runs)) if position not in named]
    if plain and len(plain) != len(rest):
        raise UsageError(
            f"{option}: {plural(len(plain), 'file')} for {plural(len(rest), 'run')}: give one per run, in the runs' "
            f"order, or name each run's as RUN=FILE"
        )
    for position, path in zip(rest if plain else [], plain, strict=True):
        chosen[position] = path
    return chosen


def run_report(request: ReportRequest, console: Console) -> ReportResult:
    """`rankvideo report` (see the module docstring); the counts for the summary line."""
    validate_report(request)
    scores_paths = files_per_run("--scores", request.scores, request.run_paths)
    explanations_paths = files_per_run("--explanations", request.explanations, request.run_paths)
    runs = [read_run_reporting(path, console) for path in request.run_paths]
    baseline = read_run_reporting(request.baseline_path, console) if request.baseline_path is not None else None
    if baseline is not None:
        for run in runs:
            check_shared_queries(run.source, run, baseline.source, baseline)
    qrels = None
    if request.qrels_path is not None:
        from rankvideo_cli.evaluation.measures import as_qrels_dict
        from rankvideo_cli.io.qrels import describe_tolerated, read_qrels

        judged = read_qrels(request.qrels_path)
        report_tolerated(console, describe_tolerated(judged))
        qrels = as_qrels_dict(judged)
    queries = None
    if request.queries_path is not None:
        from rankvideo_cli.io.queries import read_queries

        queries = read_queries(request.queries_path)
    model_scores: list[dict[tuple[str, str], float] | None] = []
    for run, path in zip(runs, scores_paths, strict=True):
        if path is None:
            model_scores.append(None)
            continue
        from rankvideo_cli.evaluation.fusion import read_model_scores

        scores = read_model_scores(path, request.reference_model)
        check_scores_cover_the_run(run, scores, path, console)
        model_scores.append(scores)
    names = run_names(list(request.run_paths), request.baseline_path)
    evaluation = None
    if qrels is not None:
        from rankvideo_cli.evaluation.measures import evaluate_runs

        evaluation = evaluate_runs(
            [(name, run.scores()) for name, run in zip(names, runs, strict=False)],
            qrels,
            request.measures,
            baseline=(names[-1], baseline.scores()) if baseline is not None else None,
            correction=request.correction,
        )
    deltas = [_deltas(evaluation, position) for position in range(len(runs))]
    known = set(baseline or {}).union(*runs)
    unknown = [qid for qid in request.qids if qid not in known]
    if unknown:
        sources = " or ".join(run.source for run in runs)
        raise UsageError(f"--qid {unknown[0]}: no such query in {sources}" + (" or the baseline" if baseline else ""))
    qids = select_queries(known, deltas[0], qids=request.qids, limit=request.limit)
    if queries is not None:
        missing = [qid for qid in qids if qid not in queries]
        if missing:
            source = next((run for run in runs if missing[0] in run), baseline or runs[0])
            raise InputError(
                source.source,
                source.first_line.get(missing[0]),
                f"query {missing[0]!r} is not in {request.queries_path} ({len(missing)} shown queries have no text)",
            )
    sections = build_sections(
        qids,
        runs,
        baseline,
        top=request.top,
        queries=queries,
        qrels=qrels,
        evaluation=evaluation,
        model_scores=model_scores,
    )
    shown_rows = [
        (section.qid, row)
        for section in sections
        for row in (*section.baseline_rows, *(row for column in section.runs for row in column.rows))
    ]
    docids = sorted({row.docid for _qid, row in shown_rows})
    resolver = _resolver(request)
    videos = {docid: resolver.resolve(docid) if resolver is not None else None for docid in docids}
    for position, path in enumerate(explanations_paths):
        if path is not None:
            _attach_explanations(path, position, sections, videos, queries or {})
    result = ReportResult(queries=len(sections), videos=len(docids))
    strips = _thumbnails(request, videos, console, result) if resolver is not None and request.thumbnails else {}
    if resolver is None:
        say(console, "no --videos: the report shows no frames")
    from rankvideo_cli.report.page import ShownRun, render_page, section_ids, thumbnail_sources

    links = section_ids(sections)
    shown_runs = [
        ShownRun.of(name, position, has_model_scores=scores is not None, sections=sections)
        for position, (name, scores) in enumerate(zip(names, model_scores, strict=False))
    ]
    charts = [
        _charts(shown, run, baseline, qrels, scores, run_deltas, evaluation, request.top, links)
        for shown, run, scores, run_deltas in zip(shown_runs, runs, model_scores, deltas, strict=True)
    ]
    directory = output_directory(request)
    thumbnails, thumbnail_files = thumbnail_sources(strips, as_files=directory is not None)
    page = render_page(
        runs=shown_runs,
        baseline_name=names[-1] if baseline is not None else None,
        sections=sections,
        total_queries=len(known),
        top=request.top,
        evaluation=evaluation,
        charts=charts,
        thumbnails=thumbnails,
    )
    result.bytes = len(page.encode("utf-8"))
    if directory is not None:
        result.written = directory / INDEX
        write_report_directory(directory, page, thumbnail_files)
    elif request.output is not None and str(request.output) != "-":
        result.written = Path(request.output)
        atomic_write_text(result.written, page)
    else:
        write_stdout(page)
    say(console, _summary(result))
    return result


def _attach_explanations(
    path: Path,
    position: int,
    sections: Sequence[QuerySection],
    videos: Mapping[str, Path | TarMember | None],
    queries: Mapping[str, str],
) -> None:
    """The answers of `rankvideo explain --json` (the model of the run at `position`) beside that run's rows."""
    rows = [(section.qid, row) for section in sections for row in section.runs[position].rows]
    pairs = {(qid, row.docid): str(videos[row.docid]) if videos[row.docid] is not None else None for qid, row in rows}
    answers = read_explanations(path, queries, pairs)
    for qid, row in rows:
        row.explanation = answers.get((qid, row.docid))


class ReportWriteError(RankVideoError):
    """The report's directory could not be written (a full disk, a quota, a read-only remount): the report that
    was there before, page and thumbnails, is unchanged and nothing half-written is left. Exit 1: the inputs
    were fine."""

    exit_code = 1

    def __init__(self, directory: Path, error: OSError) -> None:
        reason = error.strerror or str(error)
        super().__init__(f"{directory}: cannot write the report: {reason} (any earlier report there is unchanged)")


def write_report_directory(directory: Path, page: str, files: Mapping[str, bytes]) -> None:
    """`directory/index.html` and `directory/thumbs/` replaced together (see `ReportWriteError`): both are made in a
    hidden folder inside `directory`, then moved in by renames, which need no space."""
    from rankvideo_cli.report.page import THUMBS

    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".report.", suffix=".tmp", dir=directory))
    except OSError as error:
        raise ReportWriteError(directory, error) from None
    try:
        try:
            if files:
                (staging / THUMBS).mkdir()
            for name, data in files.items():
                _write_new_file(staging / name, data, durable=False)
            _write_new_file(staging / INDEX, page.encode("utf-8"), durable=True)
            with contextlib.suppress(FileNotFoundError):  # an earlier page keeps its permissions, as atomic_writer does
                os.chmod(staging / INDEX, (directory / INDEX).stat().st_mode & 0o7777)
            _swap_in(staging, directory, THUMBS)
        finally:
            # a failed attempt's files, or after the swap the earlier thumbs/
            shutil.rmtree(staging, ignore_errors=True)
    except OSError as error:
        if created:
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise ReportWriteError(directory, error) from None


def _write_new_file(path: Path, data: bytes, *, durable: bool) -> None:
    # Plain os.write: where tests/test_cli_report.py fills the disk. Thumbnails are not fsynced one by one (thousands
    # of them, and a report can be made again); the page is, as atomic_writer does.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view) :]
        if durable:
            os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _swap_in(staging: Path, directory: Path, thumbs_name: str) -> None:
    """Move staging's thumbs/ and index.html into `directory` and the earlier thumbs/ into staging; on a failure,
    every rename done is undone."""
    earlier, thumbs = directory / thumbs_name, staging / thumbs_name
    undo: list[tuple[Path, Path]] = []
    try:
        if os.path.lexists(earlier):
            os.rename(earlier, staging / f"earlier-{thumbs_name}")
            undo.append((staging / f"earlier-{thumbs_name}", earlier))
        if thumbs.exists():
            os.rename(thumbs, earlier)
            undo.append((earlier, thumbs))
        os.replace(staging / INDEX, directory / INDEX)
    except BaseException:
        for source, target in reversed(undo):
            os.rename(source, target)
        raise


def check_scores_cover_the_run(
    run: Run, model_scores: Mapping[tuple[str, str], float], scores_path: Path, console: Console, shown: int = 5
) -> None:
    """A `--scores` file that scores none of the run's pairs (another run's) is refused; pairs without a score
    are counted and named on stderr, as their empty cells on the page would not say why."""
    pairs = [(qid, candidate.docid) for qid, candidates in run.items() for candidate in candidates]
    unscored = [pair for pair in pairs if pair not in model_scores]
    if not unscored:
        return
    source = display_name(scores_path)
    if len(unscored) == len(pairs):
        raise InputError(
            source, None, f"no score for any of the {len(pairs)} pairs of {run.source} (the scores of another run?)"
        )
    examples = ", ".join(f"{qid} {docid}" for qid, docid in unscored[:shown]) + (
        ", ..." if len(unscored) > shown else ""
    )
    say(
        console,
        f"{len(unscored)} of {plural(len(pairs), 'pair')} of {run.source} "
        f"{'has' if len(unscored) == 1 else 'have'} no score in {source} (e.g. {examples})",
    )


def _deltas(evaluation: EvalReport | None, position: int) -> dict[str, float]:
    """qid -> the change of the first measure (the run at `position` - the baseline), for the judged queries."""
    if evaluation is None or evaluation.baseline is None:
        return {}
    measure = evaluation.measures[0]
    ours, theirs = evaluation.runs[position].values, evaluation.baseline.values
    return {qid: values[measure] - theirs[qid][measure] for qid, values in ours.items() if qid in theirs}


def _resolver(request: ReportRequest) -> MemoResolver | None:
    return MemoResolver(request.videos.resolver()) if request.videos is not None else None


def _thumbnails(
    request: ReportRequest, videos: Mapping[str, Path | TarMember | None], console: Console, result: ReportResult
) -> dict[str, Thumbnails]:
    from rankvideo_cli.pipeline.score import default_decode_workers
    from rankvideo_cli.report.thumbnails import make_thumbnails
    from rankvideo_cli.videos.frame_cache import FrameCache

    progress = StepProgress(console, "report: videos")
    lock = threading.Lock()
    done = [0]

    def advance() -> None:
        with lock:
            done[0] += 1
            progress(done[0], len(videos))

    strips = make_thumbnails(
        videos,
        count=request.thumbnails,
        config=request.sampling,
        frame_cache=FrameCache(request.frames_cache) if request.frames_cache is not None else None,
        workers=request.decode_workers or default_decode_workers(),
        on_done=advance,
    )
    for strip in strips.values():
        if strip.ok:
            result.from_frame_cache += strip.source == "frame cache"
            result.decoded += strip.source == "decoded"
        else:
            kind = str(strip.problem).split(":")[0]
            result.problems[kind] = result.problems.get(kind, 0) + 1
    return strips


def _charts(
    shown: ShownRun,
    run: Run,
    baseline: Run | None,
    qrels: Mapping[str, Mapping[str, int]] | None,
    model_scores: Mapping[tuple[str, str], float] | None,
    deltas: Mapping[str, float],
    evaluation: EvalReport | None,
    top: int,
    links: Mapping[str, str],
) -> list[Chart]:
    """One run's charts: what the inputs allow (the change per query needs a baseline and qrels, the others qrels).
    Each chart's ids start with its own name, so that several inline SVGs never share one."""
    from rankvideo_cli.report import charts
    from rankvideo_cli.report.page import Chart

    drawn = []
    key = f"run{shown.position + 1}"
    if deltas and evaluation is not None:
        measure = evaluation.measures[0]
        drawn.append(
            Chart(
                f"{key}-delta",
                f"Change in {measure} per judged query (a bar leads to its query)",
                charts.delta_chart(deltas, measure, links, f"{key}-delta"),
            )
        )
    if qrels is None:
        return drawn
    name = "logit_delta (--scores)" if model_scores is not None else "the run's score"
    judged_scores: dict[str, list[tuple[float, int]]] = {}
    for qid, candidates in run.items():
        judged = qrels.get(qid, {})
        for candidate in candidates:
            if candidate.docid not in judged:
                continue
            value = model_scores.get((qid, candidate.docid)) if model_scores is not None else candidate.score
            if value is not None and math.isfinite(value):
                judged_scores.setdefault(qid, []).append((value, judged[candidate.docid]))
    everything = [pair for pairs in judged_scores.values() for pair in pairs]
    drawn.append(
        Chart(
            f"{key}-ecdf",
            f"{name} of judged candidates: the share at or below each value, relevant and not",
            charts.score_ecdf_chart(
                [value for value, grade in everything if grade > 0],
                [value for value, grade in everything if grade <= 0],
                name,
                f"{key}-ecdf",
            ),
        )
    )
    order = sorted(judged_scores, key=lambda qid: (-deltas.get(qid, 0.0), qid)) if deltas else sorted(judged_scores)
    drawn.append(
        Chart(
            f"{key}-strip",
            f"{name} per query, by judgment: are the relevant above the rest within each query?",
            charts.strip_chart([(qid, judged_scores[qid]) for qid in order], name, links, f"{key}-strip"),
        )
    )
    if baseline is not None:
        moved = []
        for qid, candidates in run.items():
            first_stage = {c.docid: c.first_stage_rank for c in baseline.get(qid, [])}
            judged = qrels.get(qid, {})
            for candidate in candidates:
                if judged.get(candidate.docid, 0) > 0 and candidate.docid in first_stage:
                    moved.append((first_stage[candidate.docid], candidate.first_stage_rank))
        drawn.append(
            Chart(
                f"{key}-ranks",
                "Where the judged-relevant candidates moved",
                charts.rank_change_chart(moved, top, f"{key}-ranks"),
            )
        )
    return drawn


def _summary(result: ReportResult) -> str:
    problems = ", ".join(f"{count} {kind}" for kind, count in sorted(result.problems.items()))
    where = f"written to {result.written}" if result.written is not None else "written to stdout"
    return (
        f"report of {plural(result.queries, 'query', 'queries')}, {plural(result.videos, 'video')} "
        f"({result.from_frame_cache} from the frame "
        f"cache, {result.decoded} decoded" + (f", {problems}" if problems else "") + f"); {result.bytes:,} bytes "
        f"{where}"
    )
