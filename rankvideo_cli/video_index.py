"""Find a video by docid anywhere under `--videos DIR`: in sub-folders and inside uncompressed `.tar` shards
(MultiVENT 2.0's public release packs 100 YouTube-id videos per tar), read in place.

The index maps a file's stem (`PPQVve-Jeb4` for `000001/PPQVve-Jeb4.mp4` or for the member
`PPQVve-Jeb4.mp4` of `000001.tar`) to its location. A tar member is read by FFmpeg's `subfile` protocol
(bounded reads of the member's bytes, never the tar into memory) through `TarMember.ffmpeg_url`. Members and
files that are not videos (`.json`, `.m4a`, `.info.json`) are ignored; two videos with the same stem are an
error naming both. Symlinks are not followed (a link could leave DIR).

Building it reads each tar's headers only (tarfile seeks over the data of an uncompressed tar). It is cached
as JSON under `$RANKVIDEO_CACHE` (default `~/.cache/rankvideo`), keyed by DIR's real path, with the size and
mtime of every folder and tar it read: the cache is used while none of them changed, rebuilt otherwise.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rankvideo_cli.errors import UsageError

# what counts as a video file, by extension; tried in this order by `videos.VideoResolver` too
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")
INDEX_VERSION = 2


@dataclass(frozen=True)
class TarMember:
    """A video stored inside an uncompressed tar: its bytes are `size` bytes at `offset` of `tar`."""

    tar: Path
    member: str
    offset: int
    size: int

    def __str__(self) -> str:
        return f"{self.tar}::{self.member}"

    def __fspath__(self) -> str:  # for messages and keys only: open it with `ffmpeg_url`
        return str(self)

    def ffmpeg_url(self) -> str:
        return f"subfile,,start,{self.offset},end,{self.offset + self.size},,:{self.tar}"

    def exists(self) -> bool:
        return self.tar.is_file()


def _stem(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    for suffix in VIDEO_EXTENSIONS:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return None


@dataclass
class VideoIndex:
    root: Path
    entries: dict[str, str | list] = field(default_factory=dict)  # stem -> relative path, or [tar, member, off, size]
    signature: dict[str, list[int]] = field(default_factory=dict)  # folder or tar -> [size, mtime_ns]
    built: bool = False  # built now (False: read from the cache)
    linked: set[str] = field(default_factory=set)  # stems of symlinked video files (not indexed: never followed)

    def locate(self, docid: str) -> Path | TarMember | None:
        entry = self.entries.get(docid)
        if entry is None:
            return None
        if isinstance(entry, str):
            return self.root / entry
        tar, member, offset, size = entry
        return TarMember(self.root / tar, member, int(offset), int(size))

    def summary(self) -> dict:
        by_kind = Counter("tar member" if isinstance(entry, list) else "file" for entry in self.entries.values())
        by_suffix = Counter(
            Path(entry[1] if isinstance(entry, list) else entry).suffix.lower() for entry in self.entries.values()
        )
        return {
            "root": str(self.root),
            "videos": len(self.entries),
            "files": by_kind["file"],
            "tar_members": by_kind["tar member"],
            "tars": sum(1 for name in self.signature if name.endswith(".tar")),
            "by_extension": dict(sorted(by_suffix.items())),
        }


def _add(entries: dict, origin: dict[str, str], stem: str, entry: str | list, where: str, root: Path) -> None:
    if stem in entries:
        raise UsageError(f"{root}: two videos for docid {stem!r}: {origin[stem]} and {where}")
    entries[stem] = entry
    origin[stem] = where


def _scan(root: Path) -> tuple[dict[str, list[int]], list[str], list[str], list[str]]:
    """(folder or tar -> [size, mtime_ns], video files, tars, symlinked videos' stems), relative to root,
    sorted: deterministic."""
    signature: dict[str, list[int]] = {}
    files: list[str] = []
    tars: list[str] = []
    linked: list[str] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        directory = root / relative if relative else root
        status = directory.stat()
        signature[relative or "."] = [status.st_size, status.st_mtime_ns]
        with os.scandir(directory) as listing:
            for entry in listing:
                name = f"{relative}/{entry.name}" if relative else entry.name
                if entry.is_symlink():
                    stem = _stem(entry.name)
                    if stem is not None:
                        linked.append(stem)
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(name)
                elif entry.is_file(follow_symlinks=False):
                    if entry.name.lower().endswith(".tar"):
                        stat = entry.stat(follow_symlinks=False)
                        signature[name] = [stat.st_size, stat.st_mtime_ns]
                        tars.append(name)
                    elif _stem(entry.name) is not None:
                        files.append(name)
    return signature, sorted(files), sorted(tars), sorted(linked)


def _tar_members(root: Path, relative: str) -> list[tuple[str, int, int]]:
    try:
        with tarfile.open(root / relative, mode="r:") as archive:
            return [
                (member.name, member.offset_data, member.size)
                for member in archive
                if member.isreg() and _stem(member.name) is not None
            ]
    except (tarfile.TarError, OSError) as error:
        raise UsageError(f"{root / relative}: not a readable uncompressed tar ({error})") from None


def _cache_path(root: Path) -> Path:
    base = Path(os.environ.get("RANKVIDEO_CACHE") or Path.home() / ".cache" / "rankvideo")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return base / "video-index" / f"{key}.json"


def build_index(root: str | Path, *, use_cache: bool = True) -> VideoIndex:
    """The index of `root` (see the module docstring), from the cache when nothing under it changed."""
    from rankvideo_cli.io.atomic import atomic_write_text

    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--videos {root}: not a directory")
    signature, files, tars, linked = _scan(root)
    cache = _cache_path(root)
    if use_cache:
        try:
            cached = json.loads(cache.read_text(encoding="utf-8"))
            if cached.get("version") == INDEX_VERSION and cached.get("signature") == signature:
                return VideoIndex(root, cached["entries"], signature, built=False, linked=set(linked))
        except (OSError, ValueError, AttributeError):
            pass
    entries: dict[str, str | list] = {}
    origin: dict[str, str] = {}
    for relative in files:
        _add(entries, origin, _stem(relative) or "", relative, relative, root)
    for relative in tars:
        for member, offset, size in _tar_members(root, relative):
            _add(entries, origin, _stem(member) or "", [relative, member, offset, size], f"{relative}::{member}", root)
    index = VideoIndex(root, dict(sorted(entries.items())), signature, built=True, linked=set(linked))
    payload = {"version": INDEX_VERSION, "root": str(root.resolve()), "signature": signature, "entries": index.entries}
    with contextlib.suppress(OSError):  # an unwritable cache costs a rebuild next time, nothing else
        atomic_write_text(cache, json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n")
    return index
