"""Helpers shared by the tests: input files with their one-line errors, and reranks of the shipped sample
(`sample_runs/`) with the tiny model and their score stores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rankvideo_cli.errors import InputError

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"


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


def sample_rerank_args(videos: Path, *extra: str) -> list[str]:
    """`rankvideo rerank` of the flat sample's run and queries with the tiny model, over the videos in `videos`."""
    return [
        "rerank",
        str(SAMPLE / "first_stage.trec"),
        str(SAMPLE / "queries.tsv"),
        "--videos",
        str(videos),
        "--model",
        "tiny-random",
        *extra,
    ]


def rerank_args(output: Path, *extra: str) -> list[str]:
    """`rankvideo rerank` of the flat sample with the tiny model, writing the run to `output`."""
    return sample_rerank_args(SAMPLE / "videos", "--output", str(output), *extra)


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


def stored_rerank_args(output: Path, store: Path, *extra: str) -> list[str]:
    """`rerank_args` into the score store `store`, with one decode thread (a deterministic pace)."""
    return rerank_args(output, "--cache", str(store), "--decode-workers", "1", *extra)


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
