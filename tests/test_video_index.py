"""`--videos DIR` finds videos in sub-folders and inside .tar shards (MultiVENT 2.0's published layout), read in
place; frames of a tar member equal those of the same file extracted; the index is cached and rebuilt on change."""

from __future__ import annotations

import io
import os
import tarfile
import time
from pathlib import Path

import pytest
from helpers import sample_rerank_args
from typer.testing import CliRunner

from rankvideo_cli.cli import app
from rankvideo_cli.errors import UsageError
from rankvideo_cli.videos.identity import content_identity
from rankvideo_cli.videos.index import TarMember, build_index

SAMPLE = Path(__file__).resolve().parent.parent / "sample_runs"
VIDEOS = SAMPLE / "videos"


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


def test_rerank_over_tar_shards_equals_rerank_over_the_flat_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
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


def test_the_multivent_shaped_sample_reranks_like_the_flat_sample(tiny_model_dir: Path, tmp_path: Path) -> None:
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
            "tiny-random",
            "--cache",
            str(tmp_path / "store"),
            "--qrels",
            str(multivent / "judgments.jsonl"),
            "--tag",
            "rv",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "1 candidate videos have no file" in result.stderr and "36 pairs scored now" in result.stderr
    flat = CliRunner().invoke(
        app,
        [
            "rerank",
            str(SAMPLE / "first_stage.trec"),
            str(SAMPLE / "queries.tsv"),
            "--videos",
            str(VIDEOS),
            "--model",
            "tiny-random",
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
