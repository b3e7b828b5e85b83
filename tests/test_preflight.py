"""Fail before the first GPU second: every bad option and output location is refused up front (exit 2, one line,
no model loaded, nothing written); outputs never overwrite inputs; the manifest tells the truth."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

import rankvideo_cli.cli as cli_module
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

    monkeypatch.setattr(cli_module, "_load_scorer", refuse)


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
        (["--normalization", "foo"], ["normalization", "'foo'"]),
        (["--interpolate", "0.5", "--normalization", "l2"], ["normalization", "'l2'"]),
        (["--normalization", "zscore"], ["--interpolate"]),
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
    line = assert_refused(rerank("--depth", "0"), "'--depth'", prefix="rankvideo rerank: ")
    assert line.endswith("(see 'rankvideo rerank --help')")
    assert_refused(rerank("--interpolate", "1.5"), "'--interpolate'", prefix="rankvideo rerank: ")
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
    import rankvideo_cli.workflow as workflow

    def broken_finish(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(workflow, "_finish", broken_finish)
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
