"""`--videos DIR` finds videos in sub-folders and inside .tar shards (MultiVENT 2.0's published layout), read in
place; frames of a tar member equal those of the same file extracted; the index is cached and rebuilt on change."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import tarfile
import time
from pathlib import Path

import pytest
from helpers import FAKE, SAMPLE, VIDEOS, sample_rerank_args, write_inputs
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.errors import UsageError
from rankvideo_cli.videos.identity import content_identity
from rankvideo_cli.videos.index import TarMember, build_index


def add_to_tar(tar: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(tar, "w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


@pytest.fixture
def multivent_dir(tmp_path: Path) -> Path:
    """YouTube-style ids in a sub-folder and in two tar shards, with metadata members that are not videos."""
    root = tmp_path / "videos"
    (root / "000001").mkdir(parents=True)
    (root / "000001" / "PPQVve-Jeb4.mp4").write_bytes((VIDEOS / "v001.mp4").read_bytes())
    (root / "000001" / "PPQVve-Jeb4.info.json").write_text("{}")
    add_to_tar(
        root / "000002.tar",
        {
            "-LAxzdxpDoE.mp4": (VIDEOS / "v002.mp4").read_bytes(),
            "-LAxzdxpDoE.info.json": b"{}",
            "-LAxzdxpDoE.m4a": b"audio",
        },
    )
    add_to_tar(root / "000003.tar", {"shard/_x9kQ2m1aaa.mkv": (VIDEOS / "v003.mp4").read_bytes()})
    return root


def test_the_index_finds_files_in_folders_and_members_of_tars(multivent_dir: Path) -> None:
    index = build_index(multivent_dir, use_cache=False)
    assert sorted(index.entries) == ["-LAxzdxpDoE", "PPQVve-Jeb4", "_x9kQ2m1aaa"]
    assert index.locate("PPQVve-Jeb4") == multivent_dir / "000001" / "PPQVve-Jeb4.mp4"
    member = index.locate("-LAxzdxpDoE")
    assert isinstance(member, TarMember) and member.tar == multivent_dir / "000002.tar"
    assert member.size == len((VIDEOS / "v002.mp4").read_bytes())
    assert index.locate("_x9kQ2m1aaa").member == "shard/_x9kQ2m1aaa.mkv"
    assert index.locate("nope") is None
    assert index.summary()["by_extension"] == {".mkv": 1, ".mp4": 2}
    assert (index.summary()["files"], index.summary()["tar_members"], index.summary()["tars"]) == (1, 2, 2)


def test_two_videos_with_one_docid_are_an_error_naming_both(multivent_dir: Path) -> None:
    (multivent_dir / "-LAxzdxpDoE.webm").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"'-LAxzdxpDoE'.*-LAxzdxpDoE.webm and 000002.tar::-LAxzdxpDoE.mp4"):
        build_index(multivent_dir, use_cache=False)


def test_the_cached_index_is_used_until_a_folder_or_tar_changes(multivent_dir: Path) -> None:
    assert build_index(multivent_dir).built
    assert not build_index(multivent_dir).built  # nothing changed: read from the cache
    time.sleep(0.01)
    add_to_tar(multivent_dir / "000003.tar", {"newcomer01a.mp4": (VIDEOS / "v004.mp4").read_bytes()})
    rebuilt = build_index(multivent_dir)
    assert rebuilt.built and "newcomer01a" in rebuilt.entries and "_x9kQ2m1aaa" not in rebuilt.entries
    (multivent_dir / "000001" / "PPQVve-Jeb4.mp4").unlink()
    assert "PPQVve-Jeb4" not in build_index(multivent_dir).entries


def test_tar_member_frames_and_identity_equal_the_extracted_file(multivent_dir: Path, tmp_path: Path) -> None:
    from rankvideo_cli.videos.frames import sample_video

    member = build_index(multivent_dir, use_cache=False).locate("-LAxzdxpDoE")
    extracted = tmp_path / "extracted.mp4"
    with tarfile.open(multivent_dir / "000002.tar") as archive:
        extracted.write_bytes(archive.extractfile("-LAxzdxpDoE.mp4").read())
    from_tar, from_file = sample_video(member), sample_video(extracted)
    assert from_tar.frame_indices == from_file.frame_indices and from_tar.total_frames == from_file.total_frames
    assert from_tar.source_fps == from_file.source_fps and from_tar.frames.shape == from_file.frames.shape
    assert bool((from_tar.frames == from_file.frames).all())
    assert content_identity(member) == content_identity(extracted)


def test_rerank_over_tar_shards_equals_rerank_over_the_flat_folder(tmp_path: Path) -> None:
    packed = tmp_path / "packed"
    (packed / "000001").mkdir(parents=True)
    names = sorted(path.name for path in VIDEOS.glob("*.mp4"))
    (packed / "000001" / names[0]).write_bytes((VIDEOS / names[0]).read_bytes())
    add_to_tar(packed / "000002.tar", {name: (VIDEOS / name).read_bytes() for name in names[1:]})
    outputs = {}
    for name, videos in (("flat", VIDEOS), ("packed", packed)):
        result = CliRunner().invoke(app, sample_rerank_args(videos, "--cache", str(tmp_path / f"{name}-store")))
        assert result.exit_code == 0, result.output
        outputs[name] = result.stdout
    assert outputs["packed"] == outputs["flat"] and len(outputs["flat"].splitlines()) == 40
    shown = CliRunner().invoke(app, ["videos", str(packed), "--json"])
    assert shown.exit_code == 0 and '"tar_members": 11' in shown.stdout and '"files": 1' in shown.stdout


def test_symlinks_are_not_followed(multivent_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "escaped0001.mp4").write_bytes(b"x")
    os.symlink(outside, multivent_dir / "link")
    os.symlink(outside / "escaped0001.mp4", multivent_dir / "escaped0001.mp4")
    assert "escaped0001" not in build_index(multivent_dir, use_cache=False).entries


def test_the_multivent_shaped_sample_reranks_like_the_flat_sample(tmp_path: Path) -> None:
    """sample_runs/multivent/ is the flat sample in MultiVENT 2.0's published shape (YouTube ids, tar shards with
    metadata members, a Query_id,query CSV, JSONL judgments): the same videos must get the same scores."""
    import json as json_module
    import sys

    sys.path.insert(0, str(SAMPLE))
    from make_multivent_sample import IDS, MISSING

    multivent = SAMPLE / "multivent"
    result = CliRunner().invoke(
        app,
        [
            "rerank",
            str(multivent / "first_stage.trec"),
            str(multivent / "queries.csv"),
            "--videos",
            str(multivent / "videos"),
            "--model",
            FAKE,
            "--cache",
            str(tmp_path / "store"),
            "--qrels",
            str(multivent / "judgments.jsonl"),
            "--tag",
            "rv",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 candidate video has no file" in result.stderr and "36 pairs scored now" in result.stderr
    flat = CliRunner().invoke(
        app,
        [
            "rerank",
            str(SAMPLE / "first_stage.trec"),
            str(SAMPLE / "queries.tsv"),
            "--videos",
            str(VIDEOS),
            "--model",
            FAKE,
            "--cache",
            str(tmp_path / "flat-store"),
            "--tag",
            "rv",
        ],
    )
    back = {youtube_id: docid for docid, youtube_id in {**IDS, **MISSING}.items()}
    renamed = "".join(
        " ".join([fields[0], fields[1], back[fields[2]], *fields[3:]]) + "\n"
        for fields in (line.split() for line in result.stdout.splitlines())
    )
    assert renamed == flat.stdout
    judged = [json_module.loads(line) for line in (multivent / "judgments.jsonl").read_text().splitlines()]
    assert {record["doc_id"] for record in judged} <= set(back)


def pack(tar: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(tar, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            archive.addfile(info, io.BytesIO(data))


def video(name: str) -> bytes:
    return (VIDEOS / f"{name}.mp4").read_bytes()


def rerank(run: Path, queries: Path, videos: Path | str, store: Path, *extra: str):
    return CliRunner().invoke(
        app,
        [
            "rerank",
            str(run),
            str(queries),
            "--videos",
            str(videos),
            "--model",
            FAKE,
            "--cache",
            str(store),
            "--decode-workers",
            "1",
            *extra,
        ],
    )


def scores_by_docid(path: Path) -> dict[str, float]:
    return {record["docid"]: record["logit_delta"] for record in map(json.loads, path.read_text().splitlines())}


def test_a_tar_rewritten_with_the_same_size_and_mtime_is_indexed_again(tmp_path: Path) -> None:
    """`cp b.tar a.tar; touch -d OLD a.tar`: the members moved; each docid must still get its own video's score."""
    videos = tmp_path / "videos"
    videos.mkdir()
    pack(videos / "a.tar", [("v003.mp4", video("v003")), ("v008.mp4", video("v008"))])
    pack(tmp_path / "b.tar", [("v008.mp4", video("v008")), ("v003.mp4", video("v003"))])
    assert (videos / "a.tar").stat().st_size == (tmp_path / "b.tar").stat().st_size
    run, queries = write_inputs(tmp_path, ["v003", "v008"])
    first = rerank(run, queries, videos, tmp_path / "store", "--scores", str(tmp_path / "first.jsonl"))
    assert first.exit_code == 0, first.output
    old = (videos / "a.tar").stat()
    shutil.copyfile(tmp_path / "b.tar", videos / "a.tar")
    os.utime(videos / "a.tar", ns=(old.st_atime_ns, old.st_mtime_ns))
    assert (videos / "a.tar").stat().st_size == old.st_size and (videos / "a.tar").stat().st_mtime_ns == old.st_mtime_ns
    again = rerank(run, queries, videos, tmp_path / "store", "--scores", str(tmp_path / "again.jsonl"))
    assert again.exit_code == 0, again.output
    flat = rerank(run, queries, VIDEOS, tmp_path / "flat-store", "--scores", str(tmp_path / "flat.jsonl"))
    assert flat.exit_code == 0, flat.output
    truth = scores_by_docid(tmp_path / "flat.jsonl")
    assert scores_by_docid(tmp_path / "first.jsonl") == truth
    assert scores_by_docid(tmp_path / "again.jsonl") == truth
    assert "2 pairs scored now" not in again.stderr  # same bytes for each docid: both answered from the store


def test_a_cached_offset_that_no_longer_holds_its_member_rebuilds_that_tar(tmp_path: Path) -> None:
    """Where ctime cannot be trusted (a restored backup, some network file systems), the header at the recorded
    offset is still read before a member is handed out."""
    videos = tmp_path / "videos"
    videos.mkdir()
    pack(videos / "a.tar", [("v003.mp4", video("v003")), ("v008.mp4", video("v008"))])
    pack(videos / "c.tar", [("v001.mp4", video("v001"))])
    built = build_index(videos)
    assert built.built
    pack(videos / "a.tar", [("v008.mp4", video("v008")), ("v003.mp4", video("v003"))])
    cache_files = list((Path(os.environ["RANKVIDEO_CACHE"]) / "video-index").glob("*.json"))
    for cache_file in cache_files:  # forge the signature: the cache now looks current
        payload = json.loads(cache_file.read_text())
        if payload["root"] == str(videos.resolve()):
            payload["signature"] = build_index(videos, use_cache=False).signature
            payload["entries"] = built.entries
            cache_file.write_text(json.dumps(payload))
    index = build_index(videos)
    assert not index.built
    member = index.locate("v003")
    assert member is not None and index.rebuilt_tars == ["a.tar"]
    with tarfile.open(videos / "a.tar") as archive:
        assert member.offset == archive.getmember("v003.mp4").offset_data
    assert member.check() is None
    with open(member.tar, "rb") as handle:
        handle.seek(member.offset)
        assert handle.read(member.size) == video("v003")
    assert index.locate("v001") is not None and index.rebuilt_tars == ["a.tar"]  # c.tar was still right


@pytest.mark.parametrize("suffix", [".tar.gz", ".tgz", ".tar.zst"])
def test_compressed_shards_are_refused_by_name(tmp_path: Path, suffix: str) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    pack(videos / "000001.tar", [("v001.mp4", video("v001"))])
    (videos / f"000002{suffix}").write_bytes(b"\x1f\x8b\x08\x00compressed")
    run, queries = write_inputs(tmp_path, ["v001"])
    shown = CliRunner().invoke(app, ["videos", str(videos)])
    assert shown.exit_code == 2
    assert f"000002{suffix} is a compressed tar shard" in shown.stderr and "plain .tar" in shown.stderr
    assert "Traceback" not in shown.output
    refused = rerank(run, queries, videos, tmp_path / "store")
    assert refused.exit_code == 2 and f"000002{suffix} is a compressed tar shard" in refused.stderr
    assert not (tmp_path / "store").exists() or not list((tmp_path / "store").glob("scores*.jsonl"))


def test_a_gzipped_tar_named_dot_tar_says_it_is_compressed(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    with tarfile.open(videos / "000001.tar", "w:gz") as archive:
        info = tarfile.TarInfo("v001.mp4")
        info.size = len(video("v001"))
        archive.addfile(info, io.BytesIO(video("v001")))
    shown = CliRunner().invoke(app, ["videos", str(videos)])
    assert shown.exit_code == 2 and "a gzip-compressed tar named .tar" in shown.stderr


def gnu_tar(directory: Path, tar: Path, *arguments: str) -> None:
    subprocess.run(["tar", *arguments, "-cf", str(tar), *sorted(os.listdir(directory))], cwd=directory, check=True)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar is part of every Debian machine")
def test_hard_links_sparse_members_and_unusable_members_through_rerank(tmp_path: Path) -> None:
    """GNU tar's hard links read the linked member's data; a sparse member, an empty, a text and a random-bytes
    member are bad videos by name (not FileNotFoundError), recorded, and not retried on the next run."""
    content = tmp_path / "content"
    content.mkdir()
    (content / "v001.mp4").write_bytes(video("v001"))
    os.link(content / "v001.mp4", content / "v002.mp4")  # stored by GNU tar as a link to v001.mp4
    (content / "v004.mp4").write_bytes(b"")
    (content / "v005.mp4").write_text("not a video, only text\n" * 20)
    (content / "v006.mp4").write_bytes(os.urandom(4096))
    sparse = tmp_path / "sparse"
    sparse.mkdir()
    with open(sparse / "v007.mp4", "wb") as handle:
        handle.write(video("v007"))
        handle.seek(3 << 20)
        handle.write(b"tail")
    videos = tmp_path / "videos"
    videos.mkdir()
    gnu_tar(content, videos / "000001.tar")
    gnu_tar(sparse, videos / "000002.tar", "--sparse", "--format=posix")
    with tarfile.open(videos / "000001.tar") as archive:
        assert archive.getmember("v002.mp4").islnk()
    with tarfile.open(videos / "000002.tar") as archive:
        assert archive.getmember("v007.mp4").issparse()

    shown = CliRunner().invoke(app, ["videos", str(videos), "--json"])
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.stdout)
    assert summary["tar_members"] == 6 and summary["unreadable_members"] == ["000002.tar::v007.mp4"]

    docids = ["v001", "v002", "v004", "v005", "v006", "v007"]
    run, queries = write_inputs(tmp_path, docids)
    scores = tmp_path / "scores.jsonl"
    first = rerank(run, queries, videos, tmp_path / "store", "--scores", str(scores), "-o", str(tmp_path / "out"))
    assert first.exit_code == 0, first.output
    assert "FileNotFoundError" not in first.output and "unexpected" not in first.output
    by_docid = scores_by_docid(scores)
    assert set(by_docid) == {"v001", "v002"} and by_docid["v001"] == by_docid["v002"]
    manifest = json.loads((tmp_path / "out.manifest.json").read_text())
    kinds = {key.rsplit("::", 1)[1]: bad["kind"] for key, bad in manifest["bad_videos"].items()}
    assert kinds == {
        "v004.mp4": "not_a_video",
        "v005.mp4": "not_a_video",
        "v006.mp4": "not_a_video",
        "v007.mp4": "unreadable_member",
    }
    assert "the file is empty" in manifest["bad_videos"][f"{videos}/000001.tar::v004.mp4"]["message"]
    assert "sparse" in manifest["bad_videos"][f"{videos}/000002.tar::v007.mp4"]["message"]
    first_run = (tmp_path / "out").read_bytes()
    second = rerank(run, queries, videos, tmp_path / "store", "-o", str(tmp_path / "out"))
    assert second.exit_code == 0, second.output
    assert "0 to score over 0 videos" in second.stderr  # the bad ones were recorded, not retried
    assert (tmp_path / "out").read_bytes() == first_run


def test_a_member_appended_twice_is_named_as_an_appended_copy(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    videos.mkdir()
    pack(videos / "a.tar", [("v001.mp4", video("v001")), ("v002.mp4", video("v002"))])
    with tarfile.open(videos / "a.tar", "a") as archive:  # what `tar rf a.tar v001.mp4` does
        info = tarfile.TarInfo("v001.mp4")
        info.size = len(video("v003"))
        archive.addfile(info, io.BytesIO(video("v003")))
    shown = CliRunner().invoke(app, ["videos", str(videos)])
    assert shown.exit_code == 2
    message = shown.stderr
    assert "holds v001.mp4 twice, an appended copy" in message and "tar extracts the last one" in message
    assert "a.tar::v001.mp4 and a.tar::v001.mp4" not in message and len(message.strip().splitlines()) == 1


def test_a_relative_videos_folder_with_a_colon_is_a_path_not_an_ffmpeg_protocol(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "a:b"
    folder.mkdir()
    (folder / "v001.mp4").write_bytes(video("v001"))
    pack(folder / "000001.tar", [("v002.mp4", video("v002"))])
    run, queries = write_inputs(tmp_path, ["v001", "v002"])
    monkeypatch.chdir(tmp_path)
    result = rerank(run, queries, "a:b", tmp_path / "store", "--scores", str(tmp_path / "scores.jsonl"))
    assert result.exit_code == 0, result.output
    assert "0 pairs with a bad video" in result.stderr and set(scores_by_docid(tmp_path / "scores.jsonl")) == {
        "v001",
        "v002",
    }
    shown = CliRunner().invoke(app, ["frames", "a:b/v001.mp4", "--json"])
    assert shown.exit_code == 0, shown.output


def test_an_unreadable_sub_folder_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As root (CI) permissions do not bite, so the listing error is what os.scandir raises for a user."""
    videos = tmp_path / "videos"
    (videos / "locked").mkdir(parents=True)
    (videos / "v001.mp4").write_bytes(video("v001"))
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    run, queries = write_inputs(tmp_path, ["v001"])
    for arguments in (
        ["videos", str(videos)],
        ["rerank", str(run), str(queries), "--videos", str(videos), "--dry-run"],
    ):
        result = CliRunner().invoke(app, arguments)
        assert result.exit_code == 2, result.output
        assert f"cannot list the folder {videos / 'locked'} (permission denied)" in result.stderr
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1
