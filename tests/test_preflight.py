"""Fail before the first GPU second: every bad option and output location is refused up front (exit 2, one line,
no model loaded, nothing written); outputs never overwrite inputs; the manifest tells the truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from rankvideo_cli import __version__
from rankvideo_cli.cli import app

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"
FIRST_STAGE = SAMPLE / "first_stage.trec"
QUERIES = SAMPLE / "queries.tsv"
QRELS = SAMPLE / "qrels.txt"
VIDEOS = SAMPLE / "videos"


def invoke(*args: str | Path, input: str | None = None) -> Result:
    return CliRunner().invoke(app, [str(arg) for arg in args], input=input)


def rerank(*extra: str | Path) -> Result:
    return invoke("rerank", FIRST_STAGE, QUERIES, "--videos", VIDEOS, "--model", "tiny-random", *extra)


@pytest.fixture
def no_model(monkeypatch: pytest.MonkeyPatch):
    """Loading the model fails the test: these errors must come before it."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("the model was loaded before the error was found")

    # deferred first: importing it binds loading's function, which must still be the real one to restore
    monkeypatch.setattr("rankvideo_cli.scoring.deferred.load_scorer", refuse)
    monkeypatch.setattr("rankvideo_cli.scoring.loading.load_scorer", refuse)


def assert_refused(result: Result, *fragments: str, prefix: str = "rankvideo: ") -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("options", "fragments"),
    [
        (["--normalization", "zscore"], ["--normalization applies to --interpolate only"]),
        (["--depth", "0"], ["--depth must be at least 1, got 0"]),
        (["--interpolate", "1.5"], ["--interpolate must be between 0 and 1, got 1.5"]),
        (["--batch-size", "0"], ["--batch-size", "at least 1", "0"]),
        (["--batch-size", "-4"], ["--batch-size", "-4"]),
        (["--decode-workers", "0"], ["--decode-workers"]),
        (["--prefetch", "-1"], ["--prefetch"]),
        (["--shard", "2/2"], ["--shard"]),
        (["--shard", "0/2", "-o", "x.trec"], ["--shard", "merge"]),
        (["--video-pattern", "{id}.mp4"], ["--video-pattern", "{docid}"]),
        (["--tag", "two words"], ["--tag"]),
        (["--qrels", QRELS, "-m", "bogus"], ["unknown measure 'bogus'"]),
        (["--qrels", QRELS, "-m", "NumRel(rel=2)"], ["no installed ir-measures backend"]),
    ],
)
def test_bad_options_are_refused_before_the_model_loads(
    no_model, tmp_path: Path, options, fragments, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert_refused(rerank(*options), *fragments)
    assert list(tmp_path.iterdir()) == []  # no store, manifest or output was created


def test_click_usage_errors_are_one_line_naming_the_option(no_model) -> None:
    line = assert_refused(rerank("--normalization", "foo"), "'--normalization'", "'foo'", prefix="rankvideo rerank: ")
    assert line.endswith("(see 'rankvideo rerank --help')")
    assert_refused(rerank("--interpolate", "0.5", "--normalization", "l2"), "'l2'", prefix="rankvideo rerank: ")
    assert_refused(rerank("--on-missing-video", "skip"), "'--on-missing-video'", prefix="rankvideo rerank: ")
    assert_refused(invoke("rerank"), "Missing argument", prefix="rankvideo rerank: ")
    assert_refused(invoke("eval", "--format", "xml", "a", "b"), "'--format'", prefix="rankvideo eval: ")
    assert_refused(invoke("bogus"), "No such command 'bogus'", prefix="rankvideo: ")


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"rankvideo {__version__}\n"


@pytest.mark.parametrize(
    ("where", "fragments"),
    [
        ("-o run", ["-o", "same file as the run", "never overwrite"]),
        ("-o queries", ["-o", "same file as the queries"]),
        ("-o qrels", ["-o", "same file as --qrels"]),
        ("--scores run", ["--scores", "same file as the run"]),
        ("--scores out", ["--scores", "-o", "same file"]),
        ("--manifest out", ["--manifest", "same file"]),
        ("-o dir", ["-o", "is a directory"]),
        ("-o under-a-file", ["-o", "not a directory"]),
        ("-o proc", ["-o", "cannot write in /proc"]),
        ("--scores sys", ["--scores", "cannot write in /sys"]),
        ("--cache file", ["--cache", "not a directory"]),
        ("-o in-store", ["-o", "inside the score store"]),
        ("-o symlink-to-run", ["same file as the run"]),
    ],
)
def test_bad_output_locations_are_refused_up_front(no_model, tmp_path: Path, where: str, fragments) -> None:
    work = tmp_path / "work"
    work.mkdir()
    run = work / "run.trec"
    run.write_bytes(FIRST_STAGE.read_bytes())
    (work / "a-file").write_text("x")
    (work / "link.trec").symlink_to(run)
    targets = {
        "run": run,
        "queries": QUERIES,
        "qrels": QRELS,
        "out": work / "out.trec",
        "dir": work,
        "under-a-file": work / "a-file" / "run.trec",
        "proc": Path("/proc/rankvideo-test.trec"),
        "sys": Path("/sys/rankvideo-test.jsonl"),
        "file": work / "a-file",
        "in-store": work / "store" / "run.trec",
        "symlink-to-run": work / "link.trec",
    }
    option, name = where.split()
    extra = [option, targets[name]]
    if option in ("--scores", "--manifest"):
        extra += ["-o", work / "out.trec"]
    if name == "in-store":
        extra += ["--cache", work / "store"]
    result = invoke("rerank", run, QUERIES, "--videos", VIDEOS, "--qrels", QRELS, *extra)
    assert_refused(result, *fragments)
    assert run.read_bytes() == FIRST_STAGE.read_bytes()
    assert not (work / "out.trec").exists() and not (work / "store").exists()


def test_dash_output_is_stdout_and_leaves_no_dash_files(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = rerank("-o", "-")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 40
    assert sorted(path.name for path in tmp_path.iterdir()) == ["rankvideo-scores"]  # the README's default store
    manifest = json.loads((tmp_path / "rankvideo-scores" / "run.manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["output"] is None


def test_output_through_a_symlink_replaces_the_target_not_the_link(tiny_model_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "results" / "reranked.trec"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "latest.trec"
    link.symlink_to(target)
    result = rerank("-o", link, "--cache", tmp_path / "store")
    assert result.exit_code == 0, result.output
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert len(target.read_text().splitlines()) == 40


def test_dry_run_prints_the_plan_loads_nothing_and_writes_nothing(
    no_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = rerank("--dry-run", "-o", tmp_path / "out.trec")
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "40 pairs within depth 100" in result.stderr
    assert "12 found, 1 missing (4 pairs" in result.stderr
    assert "36 to score (12 videos to decode)" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_dry_run_counts_what_the_store_already_holds(tiny_model_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    first = rerank("--cache", store, "--depth", "3")
    assert first.exit_code == 0, first.output
    plan = rerank("--cache", store, "--dry-run")
    assert plan.exit_code == 0, plan.output
    records = [json.loads(line) for line in (store / "scores.jsonl").read_text().splitlines()]
    stored = sum(record["kind"] == "score" for record in records)
    assert 0 < stored < 36  # depth 3: some of the 36 pairs that have a video
    assert f"(tiny-random): {stored} pairs already scored" in plan.stderr
    assert f"{36 - stored} to score" in plan.stderr


def test_manifest_says_failed_with_the_reason_when_the_run_file_was_not_written(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rankvideo_cli.jobs.rerank as rerank_command

    def broken_finish(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rerank_command, "finish_run", broken_finish)
    output = tmp_path / "out.trec"
    result = rerank("-o", output)
    assert result.exit_code != 0 and not output.exists()
    manifest = json.loads((tmp_path / "out.trec.manifest.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["reason"]


def test_manifest_records_stdin_as_stdin_with_the_checksum_of_the_bytes_read(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    monkeypatch.chdir(tmp_path)
    (tmp_path / "-").write_text("a file literally named dash\n")
    data = FIRST_STAGE.read_bytes()
    result = invoke(
        "rerank",
        "-",
        QUERIES,
        "--videos",
        VIDEOS,
        "--model",
        "tiny-random",
        "-o",
        tmp_path / "out.trec",
        input=data.decode(),
    )
    assert result.exit_code == 0, result.output
    described = json.loads((tmp_path / "out.trec.manifest.json").read_text())["inputs"]["run"]
    assert described == {"path": "-", "stdin": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


# --------------------------------------------------------------------------------------------------
# Odd inputs that pass validation must not crash later
# --------------------------------------------------------------------------------------------------


def test_score_and_frames_refuse_special_files_empty_queries_and_unwritable_save_dirs(no_model, tmp_path: Path) -> None:
    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    assert_refused(invoke("score", "-q", "a dog", fifo), "not a regular file")
    assert_refused(invoke("score", "-q", "", VIDEOS / "v001.mp4"), "--query is empty")
    assert_refused(invoke("score", "-q", "   ", VIDEOS / "v001.mp4"), "--query is empty")
    assert_refused(invoke("score", "-q", "dog", VIDEOS / "v001.mp4", "--batch-size", "0"), "--batch-size")
    assert_refused(invoke("frames", fifo), "not a regular file")
    assert_refused(invoke("frames", VIDEOS / "v001.mp4", "--save", "/proc/frames"), "--save", "cannot write")


@pytest.mark.parametrize("typo", ["tiny_random", "tiny-randm", "Tiny-Random", "tinyrandom"])
def test_a_near_miss_of_tiny_random_gets_a_did_you_mean(no_model, typo: str) -> None:
    assert_refused(rerank("--model", typo), f"unknown model {typo!r}", "did you mean 'tiny-random'?")
    assert_refused(invoke("score", "-q", "dog", VIDEOS / "v001.mp4", "--model", typo), "did you mean")


def test_an_uncached_hub_id_with_the_hub_out_of_reach_fails_at_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once, never leaves
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    result = invoke("score", "-q", "dog", VIDEOS / "v001.mp4", "--model", "someone/NoSuchModel")
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "not in the Hugging Face cache" in line and "cannot be reached" in line and "hf download" in line


@pytest.mark.parametrize("offline", [False, True], ids=["hub-out-of-reach", "HF_HUB_OFFLINE"])
def test_a_rerank_whose_model_cannot_load_writes_nothing(offline: bool, tmp_path: Path, monkeypatch) -> None:
    """It left an empty OUTPUT.scores/scores.jsonl behind: the store was opened before the model was looked for."""
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1") if offline else monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the discard port: refused at once, never leaves
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    output = tmp_path / "out" / "reranked.trec"
    result = invoke("rerank", FIRST_STAGE, QUERIES, "--videos", VIDEOS, "--model", "someone/NoSuchModel", "-o", output)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert "'someone/NoSuchModel' is not in the Hugging Face cache" in line and "hf download" in line
    assert ("HF_HUB_OFFLINE=1 forbids" in line) == offline and ("cannot be reached" in line) != offline
    assert not (tmp_path / "out").exists()


def test_long_docids_extensions_in_docids_and_the_paths_tried(tiny_model_dir: Path, tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    (videos / "v001.mp4").write_bytes((VIDEOS / "v001.mp4").read_bytes())
    long_docid = "x" * 300  # longer than NAME_MAX: stat fails with ENAMETOOLONG
    run = tmp_path / "run.trec"
    run.write_text(f"q1 Q0 v001.mp4 1 3.0 t\nq1 Q0 {long_docid} 2 2.0 t\nq1 Q0 v404.mp4 3 1.0 t\n")
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\ta person\n")
    result = invoke(
        "rerank",
        run,
        queries,
        "--videos",
        videos,
        "--video-pattern",
        "{docid}",
        "--model",
        "tiny-random",
        "--cache",
        tmp_path / "store",
    )
    assert result.exit_code == 0, result.output
    assert "1 pairs scored now" in result.stderr  # v001.mp4 resolved to itself
    assert "2 candidate videos have no file" in result.stderr and "tried v404.mp4" in result.stderr
    assert [line.split()[2] for line in result.stdout.splitlines()] == ["v001.mp4", long_docid, "v404.mp4"]
    refused = invoke(
        "rerank",
        run,
        queries,
        "--videos",
        videos,
        "--video-pattern",
        "{docid}",
        "--model",
        "tiny-random",
        "--cache",
        tmp_path / "store",
        "--on-missing-video",
        "error",
    )
    assert refused.exit_code == 2 and "tried v404.mp4" in refused.stderr


def test_scores_near_the_float_range_interpolate_without_nan(tiny_model_dir: Path, tmp_path: Path) -> None:
    lines = FIRST_STAGE.read_text().splitlines()
    huge = tmp_path / "huge.trec"
    extremes = ["1e308", "-1.79e308", "1.7976931348623157e308", "-5e-324"]
    huge.write_text(
        "".join(" ".join([*line.split()[:4], extremes[index % 4], "t"]) + "\n" for index, line in enumerate(lines))
    )
    for normalization in ("minmax", "zscore", "none"):
        result = invoke(
            "rerank",
            huge,
            QUERIES,
            "--videos",
            VIDEOS,
            "--model",
            "tiny-random",
            "--cache",
            tmp_path / "store",
            "--interpolate",
            "0.5",
            "--normalization",
            normalization,
        )
        assert result.exit_code == 0, result.output
        scores = [float(line.split()[4]) for line in result.stdout.splitlines()]
        assert len(scores) == 40 and all(score == score and abs(score) != float("inf") for score in scores)


# --------------------------------------------------------------------------------------------------
# Pipes
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wide_eval(tmp_path_factory: pytest.TempPathFactory):
    """A run and qrels whose per-query eval output (about 1 MB) is far larger than a pipe's buffer."""
    root = tmp_path_factory.mktemp("pipes")
    run, qrels = root / "run.trec", root / "qrels.txt"
    run.write_text("".join(f"q{q:05d} Q0 d{d} {d} {10 - d} t\n" for q in range(3000) for d in range(5)))
    qrels.write_text("".join(f"q{q:05d} 0 d{q % 5} 1\n" for q in range(3000)))
    return run, qrels


def _rankvideo() -> list[str]:
    import sys

    return [sys.executable, "-c", "from rankvideo_cli.cli import main; main()"]


def test_a_closed_pipe_ends_the_command_quietly_with_status_141(wide_eval) -> None:
    import subprocess

    run, qrels = wide_eval
    command = [*_rankvideo(), "eval", str(run), str(qrels), "--per-query", "--format", "tsv"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = [process.stdout.readline() for _ in range(3)]
    process.stdout.close()  # what `| head -3` does
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=60) == 141
    assert head[0].startswith(b"run\tquery_id") and stderr == ""


def test_a_non_blocking_pipe_gets_every_byte(wide_eval, tmp_path: Path) -> None:
    import fcntl
    import subprocess
    import time

    run, qrels = wide_eval
    command = [*_rankvideo(), "eval", str(run), str(qrels), "--per-query", "--format", "tsv"]
    expected = subprocess.run(command, capture_output=True, check=True).stdout
    assert len(expected) > 4 * 65536
    read_end, write_end = os.pipe()
    flags = fcntl.fcntl(write_end, fcntl.F_GETFL)
    fcntl.fcntl(write_end, fcntl.F_SETFL, flags | os.O_NONBLOCK)  # a parent that left its pipe non-blocking
    process = subprocess.Popen(command, stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    time.sleep(1.0)  # let the pipe fill: the writer meets EAGAIN
    received = bytearray()
    while chunk := os.read(read_end, 65536):
        received += chunk
    os.close(read_end)
    assert process.wait(timeout=60) == 0, process.stderr.read().decode()
    assert bytes(received) == expected
