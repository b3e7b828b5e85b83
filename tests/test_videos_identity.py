"""A score is never reused for a video that changed: the store keys scores by the video's content identity,
trusting a recorded identity only while the file's stat signature (size, mtime, ctime) is unchanged."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from helpers import SAMPLE, sample_rerank_args
from typer.testing import CliRunner

import rankvideo_cli.videos.identity as video_identity
from rankvideo_cli.cli import app
from rankvideo_cli.videos.identity import HASHED_BYTES, StatSignature, VideoIdentities, content_identity


def test_content_identity_reads_both_ends_and_the_size(tmp_path: Path) -> None:
    path = tmp_path / "clip.bin"
    body = bytearray(os.urandom(3 * HASHED_BYTES))
    path.write_bytes(body)
    original = content_identity(path)
    assert original.startswith(f"{len(body)}-")
    body[10] ^= 1  # first MiB
    path.write_bytes(body)
    assert content_identity(path) != original
    body[10] ^= 1
    body[-10] ^= 1  # last MiB
    path.write_bytes(body)
    assert content_identity(path) != original
    body[-10] ^= 1
    path.write_bytes(body + b"x")  # the size
    assert content_identity(path) != original
    path.write_bytes(body)
    assert content_identity(path) == original  # the same bytes again: the same identity


def test_a_recorded_identity_is_trusted_only_while_the_stat_signature_holds(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(b"first version")
    identity = content_identity(path)
    known = {("v", StatSignature.of(path)): identity}
    reads = []
    real = video_identity.content_identity
    monkeypatch.setattr(video_identity, "content_identity", lambda *a, **k: reads.append(a) or real(*a, **k))
    assert VideoIdentities(known).current("v", path) == identity and reads == []  # stat only, no read
    time.sleep(0.01)
    path.write_bytes(b"other version")  # a new signature: hashed again, and recorded
    identities = VideoIdentities(known)
    changed = identities.current("v", path)
    assert changed != identity and len(reads) == 1
    assert [record.identity for record in identities.take_computed("v")] == [changed]
    assert identities.take_computed("v") == [] and identities.take_all() == []  # handed out once
    assert identities.current("v", path) == changed and len(reads) == 1  # once per run
    assert VideoIdentities(known).current("v", tmp_path / "gone.mp4") is None


def run_rerank(videos: Path, store: Path) -> str:
    result = CliRunner().invoke(app, sample_rerank_args(videos, "--cache", str(store)))
    assert result.exit_code == 0, result.output
    return result.stderr


@pytest.mark.slow
def test_a_video_replaced_under_the_same_path_is_scored_again(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(SAMPLE / "videos", videos)
    store = tmp_path / "store"
    assert "36 pairs scored now, 0 from the score store" in run_rerank(videos, store)
    assert "0 pairs scored now, 36 from the score store" in run_rerank(videos, store)

    os.utime(videos / "v003.mp4")  # touched, same content: re-hashed, still the same video
    assert "0 pairs scored now, 36 from the score store" in run_rerank(videos, store)
    # ...and its new signature is recorded, so the next run trusts it without reading the file again
    touched = StatSignature.of(videos / "v003.mp4")
    records = [json.loads(line) for line in (store / "scores.jsonl").read_text().splitlines()]
    assert any(
        record["kind"] == "video_id"
        and record["video"] == str(videos / "v003.mp4")
        and (record["size"], record["mtime_ns"], record["ctime_ns"])
        == (touched.size, touched.mtime_ns, touched.ctime_ns)
        for record in records
    )

    candidates_of_v001 = sum(line.split()[2] == "v001" for line in (SAMPLE / "first_stage.trec").open())
    stat = (videos / "v001.mp4").stat()
    shutil.copyfile(videos / "v002.mp4", videos / "v001.mp4")  # another clip copied over it...
    os.utime(videos / "v001.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # ...with its old mtime forged back
    again = run_rerank(videos, store)
    assert f"{candidates_of_v001} pairs scored now, {36 - candidates_of_v001} from the score store" in again
