"""`rankvideo` as a whole: --version, usage errors in one line naming the option, every path parameter refusing an
empty path the same way, long ids quoted short in every message, and pipes (a closed pipe ends quietly with 141,
a non-blocking pipe gets every byte)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import FAKE, VIDEOS, assert_refused, invoke, rerank_sample

from rankvideo_cli import __version__
from rankvideo_cli.cli import app


def test_click_usage_errors_are_one_line_naming_the_option(no_model) -> None:
    line = assert_refused(
        rerank_sample("--normalization", "foo"), "'--normalization'", "'foo'", prefix="rankvideo rerank: "
    )
    assert line.endswith("(see 'rankvideo rerank --help')")
    assert_refused(rerank_sample("--interpolate", "0.5", "--normalization", "l2"), "'l2'", prefix="rankvideo rerank: ")
    assert_refused(rerank_sample("--on-missing-video", "skip"), "'--on-missing-video'", prefix="rankvideo rerank: ")
    assert_refused(invoke("rerank"), "Missing argument", prefix="rankvideo rerank: ")
    assert_refused(invoke("eval", "--format", "xml", "a", "b"), "'--format'", prefix="rankvideo eval: ")
    assert_refused(invoke("bogus"), "No such command 'bogus'", prefix="rankvideo: ")


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0 and result.stdout == f"rankvideo {__version__}\n"


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


def _path_parameters() -> list[tuple[str, str, bool]]:
    """(command, the parameter's name on the command line, is it an option) for every parameter of every
    command that names a file or directory, read from the commands' own declarations."""
    import typing

    import typer.models

    from rankvideo_cli.cli.params import non_empty_path, non_empty_text

    found = []
    for info in app.registered_commands:
        callback = info.callback
        assert callback is not None
        command = info.name or callback.__name__.replace("_", "-")
        for name, hint in typing.get_type_hints(callback, include_extras=True).items():
            declared = [
                item for item in getattr(hint, "__metadata__", ()) if isinstance(item, typer.models.ParameterInfo)
            ]
            if not declared:
                continue
            (parameter,) = declared
            if "Path" in str(hint.__origin__):
                assert parameter.parser is non_empty_path, f"{command} {name}: a path without the empty-path check"
            if parameter.parser not in (non_empty_path, non_empty_text):
                continue
            is_option = isinstance(parameter, typer.models.OptionInfo)
            flags = [flag for flag in parameter.param_decls or () if flag.startswith("--")]
            found.append((command, flags[0] if flags else f"--{name.replace('_', '-')}", is_option))
    return sorted(found)


@pytest.mark.parametrize(("command", "parameter", "is_option"), _path_parameters())
def test_every_path_parameter_refuses_an_empty_path_the_same_way(
    command: str, parameter: str, is_option: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`-o "$OUT"` with OUT unset must not write ./index.html or read the working directory as an input."""
    monkeypatch.chdir(tmp_path)
    result = invoke(command, *([parameter, ""] if is_option else [""]))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"rankvideo {command}: Invalid value for ")
    assert "an empty path (an unset shell variable?); give a file or directory name" in line
    assert list(tmp_path.iterdir()) == []


def test_the_report_and_the_runs_refuse_an_empty_output_path() -> None:
    """The cases users meet, named: each command with an output file or folder is among the parameters."""
    outputs = {(command, parameter) for command, parameter, _ in _path_parameters()}
    for command in ("rerank", "rank", "tune", "merge", "report"):
        assert (command, "--output") in outputs
    assert {
        ("rerank", "--scores"),
        ("merge", "--scores"),
        ("sample", "--frames-cache"),
        ("frames", "--save"),
    } <= outputs


def test_a_huge_docid_or_field_is_quoted_short_in_every_message(tmp_path: Path) -> None:
    """A 10 MB docid (a broken first stage) was printed whole, twice, in the missing-video warning: 20 MB."""
    huge = "x" * 10_000_000
    run = tmp_path / "run.trec"
    run.write_text(f"q1 Q0 {huge} 1 9 r\nq1 Q0 v001 2 8 r\n")
    queries = tmp_path / "queries.tsv"
    queries.write_text("q1\tpeople dancing\n")
    planned = invoke("rerank", run, queries, "--videos", VIDEOS, "--dry-run", "--model", FAKE)
    assert planned.exit_code == 0, planned.output
    warning = next(line for line in planned.stderr.splitlines() if "has no file under" in line)
    assert len(warning) < 1_000 and "[10,000,000 characters]" in warning
    assert len(planned.stderr) < 5_000
    run.write_text(f"q1 Q0 v001 1 {huge} r\n")  # an error quoting the bad score
    refused = invoke("rerank", run, queries, "--videos", VIDEOS, "--dry-run")
    assert_refused(refused, f"{run}:1:", "characters]")
    assert len(refused.stderr) < 1_000
