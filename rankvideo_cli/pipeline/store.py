"""Crash-safe, resumable score store: a directory of append-only JSON-lines files, one per writer (shard).

Why JSON lines and not SQLite: shards of a SLURM array run on different nodes over a shared filesystem
(NFS, Lustre, GPFS). SQLite's WAL mode needs shared memory between all readers and writers, so it is
unsafe when another node reads the file; an append-only text file that only one process ever writes is
safe there, and a reader that sees a half-written last line just ignores it. Each batch of records goes
out in one `write` and is `fsync`ed before the pipeline moves on, so a `kill -9` loses at most the batch
being written, never the file.

Layout of a store directory:

    scores.jsonl                        the writer of an unsharded run
    scores.shard-0003-of-0008.jsonl     the writer of shard 3 of 8
    shard-0003-of-0008.manifest.json    (pipeline/manifest.py) settings and counts of each shard run

Records (one JSON object per line):

    {"kind": "model", "model": FP, "fingerprint": {...}}      what a model fingerprint hash stands for
    {"kind": "score", "model": FP, "settings": FP, "qid", "query_sha256", "docid", "video", "video_id",
     "logit_delta", "p_yes", "logprob_yes", "logprob_no"}
    {"kind": "bad_video", "settings": FP, "video", "error", "message"}   cannot be sampled
    {"kind": "video_ok", "settings": FP, "video"}            a once-bad video that now samples fine
    {"kind": "video_id", "video", "size", "mtime_ns", "ctime_ns", "id"}   a video's content identity

A score's key is (model fingerprint, sampling settings fingerprint, qid, sha256 of the query text, docid,
video path, video content identity): changing the model, its revision, dtype or prompt, the sampling
settings, a query's text, a video's path or the video file's content never reuses a stale score
(`videos/identity.py` says what counts as a change of content, and how it is checked cheaply). Score
and bad-video records carry `"video_id"`; records written before it had none and are never reused. Reading
merges every `scores*.jsonl` of the directory in file-name order; the first record of a key wins, so the
result never depends on directory listing order.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from rankvideo_cli.errors import RankVideoError, UsageError
from rankvideo_cli.io.bulk import collector_paused
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.scoring.base import PairScore
from rankvideo_cli.videos.identity import IdentityRecord, StatSignature

STORE_GLOB = "scores*.jsonl"
_SHARD_FILE = re.compile(r"^scores\.shard-\d+-of-(\d+)\.jsonl$")


class StoreError(RankVideoError):
    """The score store cannot be used (unwritable directory, another writer holds the file...)."""


class PairKey(NamedTuple):
    """Identity of one scored pair inside a (model, settings) namespace (a named tuple: a store holds
    hundreds of thousands)."""

    qid: str
    query_sha256: str
    docid: str
    video: str
    video_id: str = ""  # the video file's content identity (videos/identity.py); "" in records written before it


@dataclass(frozen=True)
class BadVideo:
    """Why a video could not be sampled: `kind` is the VideoError kind (e.g. 'corrupt', 'no_video_stream')."""

    kind: str
    message: str
    video_id: str = ""  # the content identity of the file that failed: a replaced file is tried again


@dataclass
class StoreContents:
    """What a store directory holds for one (model, settings) namespace."""

    scores: dict[PairKey, PairScore] = field(default_factory=dict)
    bad_videos: dict[str, BadVideo] = field(default_factory=dict)
    models: dict[str, dict] = field(default_factory=dict)  # every model fingerprint described in the dir
    files: list[Path] = field(default_factory=list)
    unreadable_lines: int = 0  # half-written tails of a crash, or damage: those pairs are simply scored again
    # (video key, stat signature) -> content identity, as recorded by the writers (any namespace)
    video_ids: dict[tuple[str, StatSignature], str] = field(default_factory=dict)
    videos_with_records: set[str] = field(default_factory=set)  # video keys with a score or bad-video record


def query_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def fingerprint_hash(fingerprint: dict[str, str]) -> str:
    """Short stable hash of a scorer's fingerprint dict (model id, revision, dtype, prompt version...)."""
    payload = json.dumps(fingerprint, sort_keys=True, ensure_ascii=True, default=str).encode()
    return hashlib.sha256(payload).hexdigest()[:16]


def writer_file_name(shard: Shard | None) -> str:
    return "scores.jsonl" if shard is None else f"scores.{shard.label}.jsonl"


def writer_shard_count(directory: Path) -> int | None:
    """The N of the `scores.shard-I-of-N.jsonl` files in `directory`, if they all agree."""
    counts = set()
    for path in directory.glob("scores.shard-*-of-*.jsonl"):
        match = _SHARD_FILE.match(path.name)
        if match:
            counts.add(int(match.group(1)))
    return counts.pop() if len(counts) == 1 else None


def default_store_dir(output: Path | None) -> Path:
    """Where scores go when `--cache` is not given: next to the output (`run.trec` -> `run.trec.scores/`)."""
    if output is None:
        return Path("rankvideo-scores")
    return output.with_name(output.name + ".scores")


def _encode(record: dict) -> bytes:
    return (json.dumps(record, ensure_ascii=True, separators=(",", ":")) + "\n").encode("ascii")


def _score_record(model: str, settings: str, key: PairKey, score: PairScore) -> dict:
    return {
        "kind": "score",
        "model": model,
        "settings": settings,
        "qid": key.qid,
        "query_sha256": key.query_sha256,
        "docid": key.docid,
        "video": key.video,
        "video_id": key.video_id,
        "logit_delta": score.logit_delta,
        "p_yes": score.p_yes,
        "logprob_yes": score.logprob_yes,
        "logprob_no": score.logprob_no,
    }


_RAW_DECODE = json.JSONDecoder().raw_decode


def iter_records(directory: Path) -> Iterator[tuple[Path, dict | None]]:
    """Every record of every store file in `directory`, in file-name then line order.

    Unreadable lines (a crash's half-written tail, damage) come out as None.
    """
    for path in sorted(directory.glob(STORE_GLOB)):
        try:
            data = path.read_bytes()
        except FileNotFoundError:  # removed between glob and read
            continue
        # records are ASCII JSON (`_encode`); damage decodes to U+FFFD and fails to parse, as it should
        for line in data.decode("utf-8", errors="replace").split("\n"):
            if not line:
                continue
            try:
                record, end = _RAW_DECODE(line)  # json.loads minus its per-call encoding detection
            except ValueError:
                yield path, None
                continue
            yield path, record if isinstance(record, dict) and end == len(line) else None


def read_store(directory: Path, model: str, settings: str) -> StoreContents:
    """Merge all store files of `directory` for one model and sampling-settings namespace."""
    with collector_paused():  # hundreds of thousands of records: see io.bulk
        return _read_store(directory, model, settings)


def _read_store(directory: Path, model: str, settings: str) -> StoreContents:
    contents = StoreContents(files=sorted(directory.glob(STORE_GLOB)) if directory.is_dir() else [])
    if not directory.is_dir():
        return contents
    for _path, record in iter_records(directory):
        if record is None:
            contents.unreadable_lines += 1
            continue
        kind = record.get("kind")
        try:
            if kind == "score":
                if record["model"] != model or record["settings"] != settings:
                    continue
                key = PairKey(
                    record["qid"], record["query_sha256"], record["docid"], record["video"], record.get("video_id", "")
                )
                contents.videos_with_records.add(key.video)
                if key not in contents.scores:
                    contents.scores[key] = PairScore(
                        logit_delta=float(record["logit_delta"]),
                        p_yes=float(record["p_yes"]),
                        logprob_yes=float(record["logprob_yes"]),
                        logprob_no=float(record["logprob_no"]),
                    )
            elif kind == "model" and isinstance(record.get("fingerprint"), dict):
                contents.models.setdefault(str(record["model"]), record["fingerprint"])
            elif kind == "bad_video" and record["settings"] == settings:
                contents.videos_with_records.add(record["video"])
                contents.bad_videos[record["video"]] = BadVideo(
                    str(record["error"]), str(record["message"]), str(record.get("video_id", ""))
                )
            elif kind == "video_id":
                signature = StatSignature(int(record["size"]), int(record["mtime_ns"]), int(record["ctime_ns"]))
                contents.video_ids.setdefault((str(record["video"]), signature), str(record["id"]))
            elif kind == "video_ok" and record["settings"] == settings:
                contents.bad_videos.pop(record["video"], None)
        except (KeyError, TypeError, ValueError):
            contents.unreadable_lines += 1
    return contents


def store_namespaces(directory: Path) -> Counter[tuple[str, str]]:
    """How many score records each (model, settings) namespace holds: lets `merge` find the one to use."""
    counts: Counter[tuple[str, str]] = Counter()
    if directory.is_dir():
        for _path, record in iter_records(directory):
            if record is not None and record.get("kind") == "score":
                counts[(str(record.get("model")), str(record.get("settings")))] += 1
    return counts


def model_fingerprints(directory: Path) -> dict[str, dict]:
    """Model fingerprint hash -> the fingerprint dict it stands for, as recorded by the writers."""
    found: dict[str, dict] = {}
    if directory.is_dir():
        for _path, record in iter_records(directory):
            if record is None or record.get("kind") != "model":
                continue
            if isinstance(record.get("fingerprint"), dict):
                found.setdefault(str(record.get("model")), record["fingerprint"])
    return found


def _in_use_message(path: Path) -> str:
    return (
        f"{path}: another rankvideo process is writing this score store; "
        "wait for it, or give each process its own --shard or --cache"
    )


def check_not_in_use(directory: Path, shard: Shard | None, *, every_file: bool = False) -> None:
    """`UsageError` when another process holds the lock of the store file this process (shard) would write, or
    with `every_file` of any of the store's files (a parent about to start its own shard workers): a rerank
    still running into the same --cache is found before the model loads, not after the first video is scored.
    Shards of one job writing their own files side by side are not in each other's way."""
    if not directory.is_dir():
        return
    paths = sorted(directory.glob(STORE_GLOB)) if every_file else [directory / writer_file_name(shard)]
    for path in paths:
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(_in_use_message(path)) from None
        finally:
            os.close(descriptor)  # releases the probe's lock


class StoreWriter:
    """The one append-only file this process writes. Holds an exclusive lock on it while open."""

    def __init__(self, directory: Path, shard: Shard | None = None) -> None:
        self.directory = directory
        self.path = directory / writer_file_name(shard)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot open the score store: {error.strerror}") from None
        try:
            self._lock()
            self._drop_partial_tail()
            if created:
                _fsync_directory(directory)
        except BaseException:
            os.close(self._fd)
            raise
        self._announced_models: set[str] = set()

    def _lock(self) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(_in_use_message(self.path)) from None
            # ENOLCK and friends: no locks on this filesystem; one writer per shard file holds by design.

    def _drop_partial_tail(self) -> None:
        """A crash in the middle of a write can leave a last line without its newline: cut it off."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            return
        with open(self.path, "rb") as reader:
            reader.seek(max(0, size - 1))
            if reader.read(1) == b"\n":
                return
            position = size
            while position > 0:
                start = max(0, position - 65536)
                reader.seek(start)
                chunk = reader.read(position - start)
                newline = chunk.rfind(b"\n")
                if newline >= 0:
                    position = start + newline + 1
                    break
                position = start
        os.ftruncate(self._fd, position)
        os.fsync(self._fd)

    def _append(self, records: Iterable[dict]) -> None:
        data = b"".join(_encode(record) for record in records)
        if not data:
            return
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError as error:
            raise StoreError(f"{self.path}: cannot write to the score store: {error.strerror}") from None

    def announce_model(self, model: str, fingerprint: dict[str, str]) -> None:
        """Record once per session what a model hash stands for, so the store is self-describing."""
        if model in self._announced_models:
            return
        self._announced_models.add(model)
        self._append([{"kind": "model", "model": model, "fingerprint": fingerprint}])

    def add_scores(
        self,
        model: str,
        settings: str,
        scores: Iterable[tuple[PairKey, PairScore]],
        identities: Iterable[IdentityRecord] = (),
    ) -> int:
        """Append scores (and the video identities they were computed on) in one fsynced write."""
        records = [_score_record(model, settings, key, score) for key, score in scores]
        self._append([identity.to_record() for identity in identities] + records)
        return len(records)

    def add_bad_video(
        self, settings: str, video: str, bad: BadVideo, identities: Iterable[IdentityRecord] = ()
    ) -> None:
        record = {"kind": "bad_video", "settings": settings, "video": video, "video_id": bad.video_id}
        self._append(
            [identity.to_record() for identity in identities] + [{**record, "error": bad.kind, "message": bad.message}]
        )

    def add_identities(self, identities: Iterable[IdentityRecord]) -> None:
        """Video identities hashed in this run without scores to go with them (a touched, unchanged video)."""
        self._append([identity.to_record() for identity in identities])

    def add_video_ok(self, settings: str, video: str) -> None:
        self._append([{"kind": "video_ok", "settings": settings, "video": video}])

    def close(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = -1

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ScoreStore:
    """A store directory: reads merge every writer's file; this process writes only its own (per shard)."""

    def __init__(self, directory: Path, shard: Shard | None = None) -> None:
        self.directory = Path(directory)
        self.shard = shard
        self._writer: StoreWriter | None = None

    def read(self, model: str, settings: str) -> StoreContents:
        return read_store(self.directory, model, settings)

    @property
    def writer(self) -> StoreWriter:
        """This process's file, opened (and locked) on first use, so read-only uses never create files."""
        if self._writer is None:
            self._writer = StoreWriter(self.directory, self.shard)
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ScoreStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _fsync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable too (not just its data)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
