"""Full disks and unwritable places: one line naming the file and the error, nothing marked bad that is not, the
previous outputs untouched; and every output (manifests included) with the same permissions.

A full file system is simulated where the kernel reports it to a careful writer: `fsync` of a file under the
full directory fails with ENOSPC (as NFS and quota-limited file systems report a failed write-back).
"""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rankvideo_cli.cli import app

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"


class FullDisks:
    """Directories whose files cannot be made durable (ENOSPC at fsync) until they are freed."""

    def __init__(self) -> None:
        self.full: set[Path] = set()

    def fill(self, directory: Path) -> None:
        self.full.add(Path(directory).resolve())

    def free(self, directory: Path) -> None:
        self.full.discard(Path(directory).resolve())

    def holds(self, descriptor: int) -> bool:
        try:
            where = Path(os.readlink(f"/proc/self/fd/{descriptor}"))
        except OSError:
            return False
        return any(where.is_relative_to(directory) for directory in self.full)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> FullDisks:
    disks = FullDisks()
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        if disks.holds(descriptor):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", fsync)
    return disks


def write_inputs(directory: Path) -> tuple[Path, Path]:
    run = directory / "run.trec"
    run.write_text("q1 Q0 v001 1 9.0 bm25\nq1 Q0 v002 2 8.0 bm25\nq1 Q0 v404 3 7.0 bm25\n")
    queries = directory / "queries.tsv"
    queries.write_text("q1\ta person riding a bike\n")
    return run, queries


def rerank(run: Path, queries: Path, *extra: str):
    arguments = ["rerank", str(run), str(queries), "--videos", str(SAMPLE / "videos"), "--model", "tiny-random"]
    return CliRunner().invoke(app, [*arguments, "--decode-workers", "1", *extra])


def test_a_full_disk_under_the_run_file_is_one_line_and_keeps_the_old_run_and_the_store(
    tiny_model_dir: Path, tmp_path: Path, full_disk
) -> None:
    run, queries = write_inputs(tmp_path)
    disk = tmp_path / "disk"
    disk.mkdir()
    output = disk / "reranked.trec"
    output.write_text("the previous run\n")
    store = tmp_path / "store"
    full_disk.fill(disk)
    failed = rerank(run, queries, "-o", str(output), "--cache", str(store), "--manifest", str(tmp_path / "m.json"))
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output
    last = failed.stderr.strip().splitlines()[-1]
    assert last.startswith(f"rankvideo: {output}: cannot write: No space left on device")
    assert output.read_text() == "the previous run\n" and list(disk.iterdir()) == [output]
    manifest = json.loads((tmp_path / "m.json").read_text())
    assert manifest["status"] == "failed" and "No space left on device" in manifest["reason"]
    assert manifest["counts"]["pairs_scored"] == 2  # the scores are in the store: nothing to redo

    beside = rerank(run, queries, "-o", str(output), "--cache", str(store))  # the manifest on the full disk too
    assert beside.exit_code == 1 and "Traceback" not in beside.output
    assert "rankvideo: no manifest: " in beside.stderr and "0 pairs scored now" not in beside.stderr

    again = rerank(run, queries, "-o", str(tmp_path / "elsewhere.trec"), "--cache", str(store))
    assert again.exit_code == 0, again.output
    assert "0 pairs scored now, 2 from the score store" in again.stderr


def test_a_full_frame_cache_stops_sample_and_marks_no_video_bad(tmp_path: Path, full_disk) -> None:
    cache = tmp_path / "cache"
    arguments = ["sample", str(SAMPLE / "first_stage.trec"), "--videos", str(SAMPLE / "videos")]
    arguments += ["--frames-cache", str(cache), "--decode-workers", "1", "--json"]
    full_disk.fill(cache)
    failed = CliRunner().invoke(app, arguments)
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output and "unexpected" not in failed.output and "bad" not in failed.stdout
    (line,) = [text for text in failed.stderr.splitlines() if "No space left on device" in text]
    assert line.startswith(f"rankvideo: --frames-cache {cache}: cannot write to the frame cache: No space left")
    assert "not marked bad" in line
    assert list(cache.rglob("*.rvf")) == []

    full_disk.free(cache)
    resumed = CliRunner().invoke(app, arguments)
    assert resumed.exit_code == 0, resumed.output
    summary = json.loads(resumed.stdout)
    assert summary["sampled"] == 12 and summary["bad"] == 0 and summary["known_bad"] == 0


def test_an_unusable_rankvideo_cache_is_refused_before_anything_loads(tmp_path: Path, monkeypatch) -> None:
    run, queries = write_inputs(tmp_path)
    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("a file\n")
    for cache, problem in ((not_a_folder, "exists and is not a directory"), (not_a_folder / "sub", "not a directory")):
        monkeypatch.setenv("RANKVIDEO_CACHE", str(cache))
        for arguments in (
            ["rerank", str(run), str(queries), "--videos", str(SAMPLE / "videos"), "--model", "tiny-random"],
            ["sample", str(run), "--videos", str(SAMPLE / "videos"), "--frames-cache", str(tmp_path / "frames")],
            ["videos", str(SAMPLE / "videos")],
            ["score", "--query", "a bike", str(SAMPLE / "videos" / "v001.mp4"), "--model", "tiny-random"],
        ):
            result = CliRunner().invoke(app, arguments)
            assert result.exit_code == 2, (arguments, result.output)
            assert result.stderr.startswith(f"rankvideo: $RANKVIDEO_CACHE {cache}: ") and problem in result.stderr
            assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "frames").exists()


def test_manifests_get_the_permissions_of_the_run(tmp_path: Path) -> None:
    _run, queries = write_inputs(tmp_path)
    only_missing = tmp_path / "only-missing.trec"
    only_missing.write_text("q1 Q0 v404 1 7.0 bm25\n")  # no video: no model is loaded
    output = tmp_path / "out.trec"
    arguments = ["rerank", str(only_missing), str(queries), "--videos", str(SAMPLE / "videos"), "-o", str(output)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    manifest = tmp_path / "out.trec.manifest.json"
    run_mode, manifest_mode = stat.S_IMODE(output.stat().st_mode), stat.S_IMODE(manifest.stat().st_mode)
    assert manifest_mode == run_mode and run_mode & 0o044  # readable by the group and others, like the run
