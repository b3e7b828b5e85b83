"""The score store: exact round trips, namespaces, crash tails, one writer per file, merged reads."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from rankvideo_cli.errors import UsageError
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.pipeline.store import (
    BadVideo,
    PairKey,
    ScoreStore,
    StoreWriter,
    default_store_dir,
    fingerprint_hash,
    model_fingerprints,
    query_sha256,
    read_store,
    store_namespaces,
    writer_shard_count,
)
from rankvideo_cli.scoring.base import PairScore

MODEL = fingerprint_hash({"model": "tiny", "revision": "abc"})
SETTINGS = "s" * 16


def key(qid: str, docid: str, text: str = "a query") -> PairKey:
    return PairKey(qid, query_sha256(text), docid, f"/videos/{docid}.mp4")


def awkward_scores() -> list[PairScore]:
    """Floats whose decimal form is long or extreme: the store must give back the same bits."""
    values = [(-0.1, -2.3025850929940455), (-1e-300, -745.1332191019412), (0.0, -math.log(3)), (-3.5, -1 / 3)]
    return [PairScore.from_logprobs(yes, no) for yes, no in values]


def test_scores_round_trip_bit_exactly(tmp_path):
    entries = [(key("q1", f"d{index}"), score) for index, score in enumerate(awkward_scores())]
    with StoreWriter(tmp_path) as writer:
        assert writer.add_scores(MODEL, SETTINGS, entries) == len(entries)
    contents = read_store(tmp_path, MODEL, SETTINGS)
    assert contents.scores == dict(entries)
    for stored_key, score in entries:
        assert math.copysign(1, contents.scores[stored_key].logit_delta) == math.copysign(1, score.logit_delta)


def test_namespaces_do_not_mix(tmp_path):
    other_model = fingerprint_hash({"model": "tiny", "revision": "def"})
    score_a, score_b = awkward_scores()[:2]
    with StoreWriter(tmp_path) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "d1"), score_a)])
        writer.add_scores(other_model, SETTINGS, [(key("q1", "d1"), score_b)])
        writer.add_scores(MODEL, "t" * 16, [(key("q1", "d2"), score_b)])
    assert read_store(tmp_path, MODEL, SETTINGS).scores == {key("q1", "d1"): score_a}
    assert read_store(tmp_path, other_model, SETTINGS).scores == {key("q1", "d1"): score_b}
    assert store_namespaces(tmp_path) == {
        (MODEL, SETTINGS): 1,
        (other_model, SETTINGS): 1,
        (MODEL, "t" * 16): 1,
    }


def test_changed_query_text_is_a_different_key(tmp_path):
    with StoreWriter(tmp_path) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "d1", "old text"), awkward_scores()[0])])
    contents = read_store(tmp_path, MODEL, SETTINGS)
    assert key("q1", "d1", "old text") in contents.scores
    assert key("q1", "d1", "new text") not in contents.scores


def test_reads_merge_every_shard_file_and_the_first_file_wins(tmp_path):
    first, second = awkward_scores()[:2]
    with StoreWriter(tmp_path, Shard(1, 2)) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "shared"), second), (key("q1", "b"), second)])
    with StoreWriter(tmp_path, Shard(0, 2)) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "shared"), first), (key("q1", "a"), first)])
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "scores.shard-0000-of-0002.jsonl",
        "scores.shard-0001-of-0002.jsonl",
    ]
    contents = read_store(tmp_path, MODEL, SETTINGS)
    assert contents.scores == {key("q1", "shared"): first, key("q1", "a"): first, key("q1", "b"): second}
    assert writer_shard_count(tmp_path) == 2


def test_a_half_written_tail_is_ignored_by_readers_and_cut_by_the_next_writer(tmp_path):
    score = awkward_scores()[0]
    with StoreWriter(tmp_path) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "d1"), score)])
        path = writer.path
    whole = path.read_bytes()
    with open(path, "ab") as handle:  # what kill -9 in the middle of a write can leave
        handle.write(b'{"kind":"score","model":"' + MODEL.encode() + b'","settings":"ss')
    contents = read_store(tmp_path, MODEL, SETTINGS)
    assert contents.scores == {key("q1", "d1"): score}
    assert contents.unreadable_lines == 1
    with StoreWriter(tmp_path) as writer:
        assert path.read_bytes() == whole
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "d2"), score)])
    contents = read_store(tmp_path, MODEL, SETTINGS)
    assert set(contents.scores) == {key("q1", "d1"), key("q1", "d2")}
    assert contents.unreadable_lines == 0


def test_damaged_lines_are_counted_and_skipped(tmp_path):
    score = awkward_scores()[0]
    with StoreWriter(tmp_path) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "d1"), score)])
        path = writer.path
    with open(path, "ab") as handle:
        handle.write(b"\x00\x00\x00\n[1, 2]\n" + json.dumps({"kind": "score", "model": MODEL}).encode() + b"\n")
    with StoreWriter(tmp_path) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "d2"), score)])
    contents = read_store(tmp_path, MODEL, SETTINGS)
    assert set(contents.scores) == {key("q1", "d1"), key("q1", "d2")}
    assert contents.unreadable_lines == 3  # the NUL line, the list, the score record without its fields


def test_bad_videos_are_remembered_until_a_video_ok_record(tmp_path):
    with StoreWriter(tmp_path) as writer:
        writer.add_bad_video(SETTINGS, "/v/a.mp4", BadVideo("corrupt", "a.mp4: invalid data"))
        writer.add_bad_video(SETTINGS, "/v/b.mp4", BadVideo("no_video_stream", "b.mp4: audio only"))
        writer.add_bad_video("t" * 16, "/v/c.mp4", BadVideo("corrupt", "c"))
    assert read_store(tmp_path, MODEL, SETTINGS).bad_videos == {
        "/v/a.mp4": BadVideo("corrupt", "a.mp4: invalid data"),
        "/v/b.mp4": BadVideo("no_video_stream", "b.mp4: audio only"),
    }
    with StoreWriter(tmp_path) as writer:
        writer.add_video_ok(SETTINGS, "/v/a.mp4")
    assert set(read_store(tmp_path, MODEL, SETTINGS).bad_videos) == {"/v/b.mp4"}


def test_model_records_describe_fingerprints(tmp_path):
    fingerprint = {"model": "tiny", "revision": "abc"}
    with StoreWriter(tmp_path) as writer:
        writer.announce_model(MODEL, fingerprint)
        writer.announce_model(MODEL, fingerprint)
    assert model_fingerprints(tmp_path) == {MODEL: fingerprint}
    assert len(writer.path.read_text().splitlines()) == 1


def test_a_second_writer_of_the_same_file_is_refused(tmp_path):
    with StoreWriter(tmp_path, Shard(0, 2)):
        with pytest.raises(UsageError, match="another rankvideo process is writing"):
            StoreWriter(tmp_path, Shard(0, 2))
        StoreWriter(tmp_path, Shard(1, 2)).close()  # another shard's file is fine
    StoreWriter(tmp_path, Shard(0, 2)).close()  # released on close


def test_the_lock_holds_across_processes(tmp_path):
    program = (
        "import sys, pathlib; from rankvideo_cli.pipeline.store import StoreWriter; "
        "w = StoreWriter(pathlib.Path(sys.argv[1])); print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", program, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UsageError, match="another rankvideo process"):
            StoreWriter(tmp_path)
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    StoreWriter(tmp_path).close()


def test_score_store_reads_without_creating_files_and_writes_lazily(tmp_path):
    directory = tmp_path / "cache"
    store = ScoreStore(directory, Shard(2, 3))
    assert store.read(MODEL, SETTINGS).scores == {}
    assert not directory.exists()
    with store:
        store.writer.add_scores(MODEL, SETTINGS, [(key("q1", "d1"), awkward_scores()[0])])
    assert [path.name for path in directory.iterdir()] == ["scores.shard-0002-of-0003.jsonl"]


def test_records_are_one_json_object_per_line(tmp_path):
    with StoreWriter(tmp_path) as writer:
        writer.add_scores(MODEL, SETTINGS, [(key("q1", "d1"), awkward_scores()[0])])
    (line,) = writer.path.read_text().splitlines()
    record = json.loads(line)
    assert record["kind"] == "score"
    assert record["qid"] == "q1"
    assert record["docid"] == "d1"
    assert record["video"] == "/videos/d1.mp4"
    assert record["query_sha256"] == query_sha256("a query")
    assert record["logit_delta"] == awkward_scores()[0].logit_delta


def test_default_store_dir_is_next_to_the_output(tmp_path):
    assert default_store_dir(tmp_path / "runs" / "a.trec") == tmp_path / "runs" / "a.trec.scores"
