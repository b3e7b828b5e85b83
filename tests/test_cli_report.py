"""`rankvideo report`: the page's content, its inputs' errors, its thumbnails' frames, and its reproducibility.

The browser's view of the page (sorting, search, decoded thumbnails, no console errors) is
tests/test_system_browser.py.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import SAMPLE, invoke

from rankvideo_cli.errors import InputError
from rankvideo_cli.report.data import read_explanations, select_queries
from rankvideo_cli.report.thumbnails import evenly_chosen
from rankvideo_cli.videos.config import SamplingConfig

MULTIVENT = SAMPLE / "multivent"


def embedded_json(page: str, element_id: str):
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    assert match, element_id
    return json.loads(match.group(1))


def write_scores(run: Path, path: Path, salt: str = "") -> Path:
    """A `--scores` JSONL for every candidate of `run`: a made-up logit_delta per (query, video); another `salt`,
    another model's."""
    lines = []
    for line in run.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        qid, _q0, docid, *_ = line.split()
        delta = (sum(map(ord, salt + qid + docid)) * (7 if salt else 1) % 97) / 10 - 4.85
        lines.append(json.dumps({"qid": qid, "docid": docid, "logit_delta": delta}))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def multivent_rerank(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A reranked run of the MultiVENT-shaped sample, from made-up stored scores (`rankvideo rank`: no model)."""
    directory = tmp_path_factory.mktemp("multivent-rank")
    scores = write_scores(MULTIVENT / "first_stage.trec", directory / "scores.jsonl")
    reranked = directory / "reranked.trec"
    result = invoke("rank", MULTIVENT / "first_stage.trec", "--scores", scores, "-o", reranked)
    assert result.exit_code == 0, result.output
    return reranked, scores


def multivent_report(reranked: Path, scores: Path, output: Path, *extra: object):
    return invoke(
        "report",
        reranked,
        "--baseline",
        MULTIVENT / "first_stage.trec",
        "--qrels",
        MULTIVENT / "judgments.jsonl",
        "--queries",
        MULTIVENT / "queries.csv",
        "--videos",
        MULTIVENT / "videos",
        "--scores",
        scores,
        "-o",
        output,
        *extra,
    )


# --- thumbnails: the frames the model saw ---------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"codec": "h264", "fps": 25, "seconds": 12.0, "bframes": True, "gop": 25},
        {"codec": "h264", "fps": "30000/1001", "seconds": 7.0, "rotation": 90},
        {"codec": "mpeg4", "container": "avi", "fps": 24, "seconds": 6.0},
        {"codec": "vp9", "container": "webm", "fps": 30, "seconds": 5.0},
    ],
    ids=["h264-bframes", "h264-ntsc-rot90", "mpeg4-avi", "vp9-webm"],
)
@pytest.mark.parametrize("seek", [True, False], ids=["seeking", "from-the-start"])
def test_thumbnails_show_the_frames_the_sampler_takes(
    spec: dict, seek: bool, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from video_factory import VideoCache, read_frame_number

    from rankvideo_cli.report import thumbnails
    from rankvideo_cli.videos.frames import sample_video

    path = VideoCache.for_session(tmp_path_factory).get(width=320, height=240, **spec)
    # each thumbnail "image" is the barcoded frame number of the full-size frame it was made from
    # (read through the display rotation the thumbnail was turned by)
    rotation = spec.get("rotation", 0)
    monkeypatch.setattr(
        thumbnails, "jpeg_thumbnail", lambda rgb: str(read_frame_number(rgb, rotation=rotation)).encode()
    )
    if not seek:
        from rankvideo_cli.videos import plan

        class Unseekable(plan.PacketIndex):
            def __init__(self, *args: object) -> None:
                super().__init__(*args)
                self.seekable = False

        monkeypatch.setattr(plan, "PacketIndex", Unseekable)
    seeks = []
    real_seek = thumbnails._decode_after_seek
    monkeypatch.setattr(thumbnails, "_decode_after_seek", lambda *args: seeks.append(args[2]) or real_seek(*args))
    strip = thumbnails.decode_thumbnails(path, SamplingConfig(), 4)
    if seek and spec["codec"] == "h264":
        assert len(seeks) == 4  # one seek per thumbnail: a long video is not decoded whole
    if not seek:
        assert seeks == []
    expected = evenly_chosen(sample_video(path, SamplingConfig()).frame_indices, 4)
    assert strip.frame_indices == expected
    assert [int(image) for image in strip.images] == expected


def test_thumbnails_are_chosen_evenly_first_and_last_included() -> None:
    assert evenly_chosen(list(range(32)), 4) == [0, 10, 21, 31]
    assert evenly_chosen([3, 9], 4) == [3, 9]
    assert evenly_chosen([1, 2, 3], 1) == [2]


def test_each_row_says_how_it_moved(tmp_path: Path) -> None:
    from rankvideo_cli.io.runs import read_run
    from rankvideo_cli.report.data import build_sections

    baseline = tmp_path / "baseline.trec"
    baseline.write_text("".join(f"q1 Q0 d{n} {n} {10 - n} b\n" for n in range(1, 6)))  # d1 > d2 > ... > d5
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 d4 1 9 r\nq1 Q0 d1 2 8 r\nq1 Q0 d9 3 7 r\nq1 Q0 d3 4 6 r\nq1 Q0 d2 5 5 r\n")
    other = tmp_path / "other.trec"
    other.write_text("q1 Q0 d2 1 9 o\nq1 Q0 d1 2 8 o\n")
    (section,) = build_sections(
        ["q1"], [read_run(run), read_run(other)], read_run(baseline), top=3, queries=None,
        qrels={"q1": {"d4": 1, "d1": 0}}, evaluation=None, model_scores=[{("q1", "d4"): 2.0}, None],
    )  # fmt: skip
    ours, theirs = section.runs
    assert [(row.docid, [move.text for move in row.moves]) for row in ours.rows] == [
        ("d4", ["new in top 3 (was 4)"]),
        ("d1", ["down 1"]),
        ("d9", ["not in the baseline"]),
    ]
    # a baseline row: where each run put it, in the runs' order
    assert [(row.docid, [move.text for move in row.moves]) for row in section.baseline_rows] == [
        ("d1", ["to 2", "to 2"]),
        ("d2", ["out of top 3 (to 5)", "to 1"]),
        ("d3", ["out of top 3 (to 4)", "not in the run"]),
    ]
    assert [row.judgment for row in ours.rows] == [1, 0, None]  # None: unjudged
    assert ours.rows[0].logit_delta == 2.0 and ours.rows[0].p_yes == pytest.approx(0.8807970779778823)
    assert all(row.logit_delta is None for row in [*section.baseline_rows, *theirs.rows])  # their own --scores only


def test_limit_keeps_the_largest_gains_and_losses() -> None:
    run = {qid: [] for qid in ("a", "b", "c", "d", "e")}
    deltas = {"a": 0.5, "b": -0.4, "c": 0.1, "d": -0.05, "e": 0.0}
    assert select_queries(run, deltas, qids=None, limit=2) == ["a", "b"]
    assert select_queries(run, deltas, qids=None, limit=4) == ["a", "c", "d", "b"]
    assert select_queries(run, {}, qids=None, limit=2) == ["a", "b"]  # no measures: by qid
    assert select_queries(run, deltas, qids=["e", "a", "e"], limit=None) == ["e", "a"]


def test_explanations_are_matched_by_query_text_and_video_file(tmp_path: Path) -> None:
    video = SAMPLE / "videos" / "v001.mp4"
    answers = tmp_path / "explain.jsonl"
    answers.write_text(
        json.dumps({"video": str(video), "query": "a red ball", "text": "Yes, a red ball rolls."})
        + "\n"
        + json.dumps({"video": "gone.mp4", "error": "missing", "error_kind": "missing"})
        + "\n"
    )
    queries = {"q1": "a red ball", "q2": "a blue square"}
    pairs = {("q1", "v001"): str(video), ("q2", "v001"): str(video), ("q1", "v404"): None}
    assert read_explanations(answers, queries, pairs) == {("q1", "v001"): "Yes, a red ball rolls."}
    answers.write_text(answers.read_text().splitlines()[0] + "\n" + answers.read_text().splitlines()[0] + "\n")
    with pytest.raises(InputError, match=r"explain.jsonl:2: a second answer for this query and video"):
        read_explanations(answers, queries, pairs)


# --- the command ------------------------------------------------------------------------------------------------


def test_report_of_the_multivent_sample(multivent_rerank: tuple[Path, Path], tmp_path: Path) -> None:
    reranked, scores = multivent_rerank
    output = tmp_path / "report.html"
    result = multivent_report(reranked, scores, output)
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert page.count('<section class="query"') == 4  # every query of the sample
    assert "rankvideo: report of 4 queries, 13 videos (0 from the frame cache, 12 decoded, 1 missing video)" in (
        result.stderr
    )
    thumbnails = embedded_json(page, "rankvideo-thumbnails")
    assert len(thumbnails) == 13
    shown = [strip for strip in thumbnails.values() if "images" in strip]
    assert len(shown) == 12 and all(len(strip["images"]) == 4 for strip in shown)
    assert all(source.startswith("data:image/jpeg;base64,") for strip in shown for source in strip["images"])
    (missing,) = [strip for strip in thumbnails.values() if "problem" in strip]
    assert missing["problem"].startswith("missing video")
    # the change per query, the ECDF and the per-query strips of the scores, and where the relevant moved
    assert re.findall(r'<figure id="(chart-[^"]+)"', page) == [
        "chart-run1-delta", "chart-run1-ecdf", "chart-run1-strip", "chart-run1-ranks"
    ]  # fmt: skip
    assert page.count("<svg") == 4
    assert "logit_delta" in page and "unjudged" in page
    # the overview is `rankvideo eval`'s report of the same files
    evaluated = invoke(
        "eval",
        reranked,
        MULTIVENT / "judgments.jsonl",
        "--baseline",
        MULTIVENT / "first_stage.trec",
        "--format",
        "json",
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert embedded_json(page, "rankvideo-evaluation") == json.loads(evaluated.stdout)


def test_the_same_inputs_give_the_same_page(multivent_rerank: tuple[Path, Path], tmp_path: Path) -> None:
    reranked, scores = multivent_rerank
    first, second = tmp_path / "first.html", tmp_path / "second.html"
    assert multivent_report(reranked, scores, first, "--decode-workers", "1").exit_code == 0
    assert multivent_report(reranked, scores, second, "--decode-workers", "2").exit_code == 0
    assert first.read_bytes() == second.read_bytes()


def test_report_reads_frames_from_the_frame_cache(multivent_rerank: tuple[Path, Path], tmp_path: Path) -> None:
    reranked, scores = multivent_rerank
    cache = tmp_path / "frames"
    sampled = invoke(
        "sample", MULTIVENT / "first_stage.trec", "--videos", MULTIVENT / "videos", "--frames-cache", cache
    )
    assert sampled.exit_code == 0, sampled.output
    output = tmp_path / "report.html"
    result = multivent_report(reranked, scores, output, "--frames-cache", cache)
    assert result.exit_code == 0, result.output
    assert "(12 from the frame cache, 0 decoded, 1 missing video)" in result.stderr
    strips = embedded_json(output.read_text(), "rankvideo-thumbnails")
    assert {strip.get("source") for strip in strips.values()} == {"frame cache", None}


def test_report_into_a_directory_writes_the_thumbnails_beside_it(
    multivent_rerank: tuple[Path, Path], tmp_path: Path
) -> None:
    reranked, scores = multivent_rerank
    result = multivent_report(reranked, scores, f"{tmp_path / 'site'}/", "--qid", "q1", "--thumbnails", "2")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "site" / "index.html").read_text()
    assert page.count('<section class="query"') == 1
    sources = [
        source for strip in embedded_json(page, "rankvideo-thumbnails").values() for source in strip.get("images", [])
    ]
    assert sources and all(source.startswith("thumbs/") for source in sources)
    assert all((tmp_path / "site" / source).read_bytes()[:2] == b"\xff\xd8" for source in sources)  # JPEG


def test_report_of_the_flat_sample_without_baseline_or_scores(tmp_path: Path) -> None:
    output = tmp_path / "flat.html"
    result = invoke(
        "report",
        SAMPLE / "first_stage.trec",
        "--qrels",
        SAMPLE / "qrels.txt",
        "--queries",
        SAMPLE / "queries.tsv",
        "--videos",
        SAMPLE / "videos",
        "--limit",
        "2",
        "-o",
        output,
    )
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert page.count('<section class="query"') == 2
    assert "logit_delta" not in page.split('id="sections"')[1].split("<script")[0]  # no --scores: no column
    # the scores of judged candidates (ECDF and strips); no baseline: no change per query, no moves
    assert re.findall(r'<figure id="(chart-[^"]+)"', page) == ["chart-run1-ecdf", "chart-run1-strip"]


def test_a_run_without_qrels_still_renders(tmp_path: Path) -> None:
    output = tmp_path / "plain.html"
    result = invoke("report", SAMPLE / "first_stage.trec", "--thumbnails", "0", "-o", output)
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert "No qrels were given" in page and page.count('<section class="query"') == 4
    assert "no --videos: the report shows no frames" in result.stderr


def test_explanations_appear_beside_their_candidate(tmp_path: Path) -> None:
    answers = tmp_path / "explain.jsonl"
    row = {"video": str(SAMPLE / "videos" / "v001.mp4"), "query": "a red ball", "text": "Because <b>."}  # q1's
    answers.write_text(json.dumps(row) + "\n")
    output = tmp_path / "explained.html"
    result = invoke(
        "report",
        SAMPLE / "first_stage.trec",
        "--queries",
        SAMPLE / "queries.tsv",
        "--videos",
        SAMPLE / "videos",
        "--thumbnails",
        "0",
        "--explanations",
        answers,
        "-o",
        output,
    )
    assert result.exit_code == 0, result.output
    page = output.read_text()
    assert page.count("the model's answer") >= 1 and "Because &lt;b&gt;." in page  # escaped, never markup


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-run.trec"], "no-such-run.trec"),
        ([SAMPLE / "first_stage.trec", "--qrels", SAMPLE / "queries.tsv"], "queries.tsv:1:"),
        ([SAMPLE / "first_stage.trec", "--qid", "q404"], "--qid q404: no such query"),
        ([SAMPLE / "first_stage.trec", "--top", "0"], "--top must be at least 1"),
        ([SAMPLE / "first_stage.trec", "--frames-cache", SAMPLE], "--frames-cache needs --videos"),
        ([SAMPLE / "first_stage.trec", "-m", "nDCG@10"], "--measure needs --qrels"),
        ([SAMPLE / "first_stage.trec", "--qrels", SAMPLE / "qrels.txt", "-m", "nDGC@10"], "nDGC@10"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args: list[object], message: str, tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    result = invoke("report", *args, "-o", output)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not output.exists()


def test_a_query_missing_from_the_query_file_is_named(tmp_path: Path) -> None:
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\ta red ball\nq2\ta blue square moving\n")
    output = tmp_path / "report.html"
    result = invoke("report", SAMPLE / "first_stage.trec", "--queries", queries, "-o", output)
    assert result.exit_code == 2 and not output.exists()
    assert f"{SAMPLE / 'first_stage.trec'}:" in result.stderr
    assert f"query 'q3' is not in {queries} (2 shown queries have no text)" in result.stderr


def test_the_report_never_overwrites_an_input(tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    shutil.copy(SAMPLE / "first_stage.trec", run)
    result = invoke("report", run, "-o", run)
    assert result.exit_code == 2 and "is the same file as the run" in result.stderr
    assert run.read_bytes() == (SAMPLE / "first_stage.trec").read_bytes()


# --- the audit's cases: scores of another run, hostile ids, full disks, runs with no common query ---------------


def test_scores_missing_for_some_pairs_are_counted_and_named(tmp_path: Path) -> None:
    scores = write_scores(SAMPLE / "first_stage.trec", tmp_path / "scores.jsonl")
    kept = [line for line in scores.read_text().splitlines() if '"v009"' not in line]  # v009: in every query
    scores.write_text("\n".join(kept) + "\n")
    output = tmp_path / "report.html"
    result = invoke("report", SAMPLE / "first_stage.trec", "--scores", scores, "--thumbnails", "0", "-o", output)
    assert result.exit_code == 0, result.output
    missing = f"rankvideo: 4 of 40 pairs of {SAMPLE / 'first_stage.trec'} have no score in {scores} (e.g. q1 v009, "
    assert missing in result.stderr


def test_scores_of_another_run_are_refused(tmp_path: Path) -> None:
    scores = write_scores(MULTIVENT / "first_stage.trec", tmp_path / "scores.jsonl")  # the other sample's docids
    output = tmp_path / "report.html"
    result = invoke("report", SAMPLE / "first_stage.trec", "--scores", scores, "--thumbnails", "0", "-o", output)
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"rankvideo: {scores}: no score for any of the 40 pairs of {SAMPLE / 'first_stage.trec'}")
    assert not output.exists()


HOSTILE_IDS = ["<!--<script>", "constructor", "__proto__", "toString", "hasOwnProperty", "</script><b>x", "a&b"]


def write_hostile_run(directory: Path) -> Path:
    """A run whose qids and docids are valid TREC identifiers that are also HTML or JavaScript syntax."""
    run = directory / "hostile.trec"
    run.write_text(
        "".join(
            f"{qid} Q0 {docid} {rank} {10 - rank} hostile\n"
            for qid in ("<!--<script>", "constructor", "__proto__")
            for rank, docid in enumerate(HOSTILE_IDS, start=1)
        )
    )
    return run


def test_embedded_json_cannot_open_a_comment_or_end_the_script() -> None:
    from rankvideo_cli.report.page import _script_json

    value = {"<!--<script>": "</script><b>&amp;\u2028\u2029-->"}
    text = _script_json(value)
    assert not set(text) & {"<", ">", "&", "\u2028", "\u2029"}
    assert json.loads(text) == value


def test_hostile_ids_reach_the_page_only_escaped(tmp_path: Path) -> None:
    run = write_hostile_run(tmp_path)
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("<!--<script> 0 constructor 1\nq-judged-only 0 x 1\n")
    output = tmp_path / "hostile.html"
    result = invoke("report", run, "--qrels", qrels, "--videos", SAMPLE / "videos", "-o", output)
    assert result.exit_code == 0, result.output
    page = output.read_text()
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, re.S)
    assert len(scripts) == 3  # the two JSON blocks and the page's own script: none swallowed or ended early
    assert "<!--" not in page and "<b>x" not in page  # in the markup escaped by Jinja2, in the JSON by \u003c
    assert set(embedded_json(page, "rankvideo-thumbnails")) == set(HOSTILE_IDS)  # each docid, missing its video
    assert embedded_json(page, "rankvideo-evaluation")["runs"][0]["missing_queries_counted_as_zero"] == [
        "q-judged-only"
    ]


def test_a_baseline_sharing_no_query_with_the_run_is_refused_as_eval_refuses_it(tmp_path: Path) -> None:
    run = tmp_path / "run.trec"
    run.write_text("q1 Q0 v001 1 9 reranked\nq1 Q0 v002 2 8 reranked\n")
    baseline = tmp_path / "baseline.trec"
    baseline.write_text("q9 Q0 v001 1 9 first-stage\n")
    qrels = tmp_path / "qrels.txt"
    qrels.write_text("q1 0 v001 1\nq9 0 v001 1\n")
    evaluated = invoke("eval", run, qrels, "--baseline", baseline)
    output = tmp_path / "report.html"
    for extra in ([], ["--qrels", qrels]):
        reported = invoke("report", run, "--baseline", baseline, *extra, "-o", output)
        assert (reported.exit_code, reported.stderr) == (evaluated.exit_code, evaluated.stderr)
        assert reported.exit_code == 2 and not output.exists()
        (line,) = reported.stderr.strip().splitlines()
        assert (
            line == f"rankvideo: {run} and the baseline {baseline} share no query (e.g. q1 and q9): nothing to compare"
        )


class FullDisk:
    """A directory whose disk fills after `room` more writes: then ENOSPC at os.write and at fsync, as a full or
    quota-limited file system reports it (at fsync only, a failed NFS write-back: conftest.py's full_disk)."""

    def __init__(self, directory: Path, room: int) -> None:
        self.directory, self.room = directory.resolve(), room

    def holds(self, descriptor: int) -> bool:
        try:
            return Path(os.readlink(f"/proc/self/fd/{descriptor}")).is_relative_to(self.directory)
        except OSError:
            return False

    def check(self, descriptor: int) -> None:
        if self.holds(descriptor):
            if self.room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.room -= 1


@pytest.fixture
def fill_disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    disks: list[FullDisk] = []
    real_write, real_fsync = os.write, os.fsync

    def write(descriptor: int, data: bytes) -> int:
        for disk in disks:
            disk.check(descriptor)
        return real_write(descriptor, data)

    def fsync(descriptor: int) -> None:
        if any(disk.holds(descriptor) and disk.room <= 0 for disk in disks):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)

    def fill(directory: Path, room: int = 0) -> None:
        disks.append(FullDisk(directory, room))

    yield fill
    disks.clear()


def snapshot(directory: Path) -> dict[str, bytes | None]:
    return {
        str(path.relative_to(directory)): path.read_bytes() if path.is_file() else None
        for path in sorted(directory.rglob("*"))
    }


# 12 videos with frames, 3 thumbnails each: with room for 36 writes, the page is what fails
@pytest.mark.parametrize("room", [0, 3, 12 * 3], ids=["no-room", "room-for-3-thumbnails", "room-for-every-thumbnail"])
def test_a_full_disk_keeps_the_earlier_report_and_leaves_nothing_half_written(
    multivent_rerank: tuple[Path, Path], tmp_path: Path, fill_disk, room: int
) -> None:
    reranked, scores = multivent_rerank
    site = tmp_path / "site"
    first = multivent_report(reranked, scores, f"{site}/", "--qid", "q1", "--thumbnails", "2")
    assert first.exit_code == 0, first.output
    earlier = snapshot(site)
    assert sum(name.startswith("thumbs/") for name in earlier) == 2 * 9  # q1's videos, but the missing one
    fill_disk(site, room)
    failed = multivent_report(reranked, scores, f"{site}/", "--thumbnails", "3")
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output
    last = failed.stderr.strip().splitlines()[-1]
    assert last == f"rankvideo: {site}: cannot write the report: No space left on device " + (
        "(any earlier report there is unchanged)"
    )
    assert snapshot(site) == earlier


def test_a_report_into_a_new_directory_on_a_full_disk_leaves_no_directory(tmp_path: Path, fill_disk) -> None:
    fill_disk(tmp_path)
    failed = invoke("report", SAMPLE / "first_stage.trec", "--thumbnails", "0", "-o", f"{tmp_path / 'site'}/")
    assert failed.exit_code == 1 and "No space left on device" in failed.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_second_report_into_a_directory_replaces_the_thumbnails_of_the_first(
    multivent_rerank: tuple[Path, Path], tmp_path: Path
) -> None:
    reranked, scores = multivent_rerank
    site = tmp_path / "site"
    for count in (2, 1):
        result = multivent_report(reranked, scores, f"{site}/", "--qid", "q1", "--thumbnails", count)
        assert result.exit_code == 0, result.output
    sources = {
        source
        for strip in embedded_json((site / "index.html").read_text(), "rankvideo-thumbnails").values()
        for source in strip.get("images", [])
    }
    assert {f"thumbs/{path.name}" for path in (site / "thumbs").iterdir()} == sources  # none of the first's left
    assert sorted(path.name for path in site.iterdir()) == ["index.html", "thumbs"]
