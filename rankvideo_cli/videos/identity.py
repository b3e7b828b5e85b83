"""A video file's content identity, so that a score is never reused for a video that changed.

The identity is the file's size and a sha256 of its first and last MiB (`content_identity`): another clip
copied over `v001.mp4`, a re-encode, a truncated download all change it; renaming or `touch` do not. Reading
2 MiB of each of 100k videos on every resume would cost 200 GB of I/O, so the store also records the file's
stat signature (size, mtime_ns, ctime_ns) next to each identity it computed: while the signature is unchanged
the recorded identity is trusted and nothing is read; any change of the signature (a write, a copy over it,
even `touch` or `chmod`, since ctime cannot be set back) makes it hash the file again. ctime is part of the
signature because mtime can be forged (`cp -p`, `rsync -t`, `touch -d`) and ctime cannot.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from rankvideo_cli.videos.index import TarMember

HASHED_BYTES = 1 << 20  # from each end of the file


@dataclass(frozen=True)
class StatSignature:
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: str | Path | TarMember) -> StatSignature:
        """The file's signature; a tar member's is its tar's (any change to the tar re-hashes its members)."""
        status = os.stat(path.tar if isinstance(path, TarMember) else path)
        return cls(status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def content_identity(path: str | Path | TarMember, size: int | None = None) -> str:
    """`SIZE-HASH`: the video's size and the first 32 hex digits of sha256(first MiB + last MiB); for a tar
    member, of the member's bytes (the same identity as the file extracted)."""
    start = 0
    if isinstance(path, TarMember):
        start, size = path.offset, path.size
        path = path.tar
    with open(path, "rb") as handle:
        if size is None:
            size = os.fstat(handle.fileno()).st_size
        handle.seek(start)
        digest = hashlib.sha256(handle.read(min(HASHED_BYTES, size)))
        if size > HASHED_BYTES:
            handle.seek(start + max(HASHED_BYTES, size - HASHED_BYTES))
            digest.update(handle.read(min(HASHED_BYTES, size - HASHED_BYTES)))
    return f"{size}-{digest.hexdigest()[:32]}"


@dataclass(frozen=True)
class IdentityRecord:
    """What the store remembers: video key and stat signature -> content identity."""

    video: str
    signature: StatSignature
    identity: str

    def to_record(self) -> dict:
        return {
            "kind": "video_id",
            "video": self.video,
            "size": self.signature.size,
            "mtime_ns": self.signature.mtime_ns,
            "ctime_ns": self.signature.ctime_ns,
            "id": self.identity,
        }


class VideoIdentities:
    """The current identity of each video key: at most one stat (and, when the signature is new, one 2 MiB
    read) per video per run. The identities hashed in this run are handed out once each, to be written to the
    store (`take_computed` with a video's scores, `take_all` for the rest), so the next run only stats."""

    def __init__(self, known: dict[tuple[str, StatSignature], str] | None = None) -> None:
        self._known = dict(known or {})
        self._current: dict[str, str | None] = {}
        self._computed: dict[str, IdentityRecord] = {}  # hashed in this run, not yet handed out

    def current(self, key: str, path: str | Path | TarMember) -> str | None:
        """The identity of the file now at `path` (None when it cannot be read: the decoder will say why)."""
        if key in self._current:
            return self._current[key]
        identity = None
        try:
            if isinstance(path, TarMember) and path.check() is not None:
                raise FileNotFoundError(path)  # the tar changed: not this member's bytes (the decoder says so)
            signature = StatSignature.of(path)
            identity = self._known.get((key, signature))
            if identity is None:
                identity = content_identity(path, None if isinstance(path, TarMember) else signature.size)
                self._known[(key, signature)] = identity
                self._computed[key] = IdentityRecord(key, signature, identity)
        except OSError:
            identity = None
        self._current[key] = identity
        return identity

    def take_computed(self, key: str) -> list[IdentityRecord]:
        """The record hashed for `key` in this run, if not handed out yet (it goes with the video's scores)."""
        record = self._computed.pop(key, None)
        return [record] if record is not None else []

    def take_all(self) -> list[IdentityRecord]:
        """Every record not handed out yet (videos whose stored scores were still valid after a re-hash)."""
        records = list(self._computed.values())
        self._computed.clear()
        return records
