"""Find a video by docid anywhere under `--videos DIR`: in sub-folders and inside uncompressed `.tar` shards
(MultiVENT 2.0's public release packs 100 YouTube-id videos per tar), read in place.

The index maps a file's stem (`PPQVve-Jeb4` for `000001/PPQVve-Jeb4.mp4` or for the member
`PPQVve-Jeb4.mp4` of `000001.tar`) to its location. A tar member is read by FFmpeg's `subfile` protocol
(bounded reads of the member's bytes, never the tar into memory) through `TarMember.ffmpeg_url`. Members and
files that are not videos (`.json`, `.m4a`, `.info.json`) are ignored; two videos with the same stem are an
error naming both (a member appended twice to one tar, `tar rf`, is named as such). Symlinks are not followed
(a link could leave DIR). A hard-link member (GNU tar stores the second of two linked files as a link) reads
the data of the member it links to. A sparse member (`tar --sparse`) cannot be read in place: it is indexed,
and sampling it fails by name (`unreadable_member`). Compressed shards (`.tar.gz`, `.tar.zst`...) and folders
that cannot be listed are refused in one line, never skipped.

Building it reads each tar's headers only (tarfile seeks over the data of an uncompressed tar). It is cached
as JSON under `$RANKVIDEO_CACHE` (default `~/.cache/rankvideo`), keyed by DIR's real path, with the size and
mtime of every folder and the size, mtime and ctime of every tar it read: the cache is used while none of them
changed, rebuilt otherwise (ctime because `cp b.tar a.tar; touch -d OLD a.tar` keeps size and mtime). Before a
cached member is handed out, the tar header at its recorded offset must still name it with the same size and
data offset (`TarMember.check`); a mismatch rebuilds that tar's entries, so a docid is never read at a stale
offset (another video's bytes).
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
# tar shards that FFmpeg cannot read in place (the member's bytes are not stored as they are)
COMPRESSED_TAR_SUFFIXES = {
    ".tar.gz": "gunzip -k",
    ".tgz": "gunzip -k",
    ".tar.bz2": "bunzip2 -k",
    ".tbz2": "bunzip2 -k",
    ".tar.xz": "unxz -k",
    ".txz": "unxz -k",
    ".tar.zst": "zstd -d",
    ".tar.lz4": "lz4 -d",
    ".tar.lzma": "unlzma -k",
}
_COMPRESSION_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}
INDEX_VERSION = 3
SPARSE_MEMBER = "a sparse tar member (tar --sparse): its bytes are not stored in place; repack the tar without --sparse"


@dataclass(frozen=True)
class TarMember:
    """A video stored inside an uncompressed tar: its bytes are `size` bytes at `offset` of `tar`.

    `header_offset` is where tarfile found the header of the member holding the bytes (`data_member`: the
    member itself, or the one a hard link points to); `check` reads it again before the bytes are trusted.
    `unreadable` says why the member cannot be read in place (a sparse member), None when it can.
    """

    tar: Path
    member: str
    offset: int
    size: int
    header_offset: int = -1
    data_member: str | None = None
    unreadable: str | None = None

    def __str__(self) -> str:
        return f"{self.tar}::{self.member}"

    def __fspath__(self) -> str:  # for messages and keys only: open it with `ffmpeg_url`
        return str(self)

    def ffmpeg_url(self) -> str:
        # an absolute path after the colon: a relative `a:b/x.tar` would be read as FFmpeg's protocol `a`
        return f"subfile,,start,{self.offset},end,{self.offset + self.size},,:{os.path.abspath(self.tar)}"

    def exists(self) -> bool:
        return self.tar.is_file()

    def read_head(self, count: int) -> bytes:
        """The member's first `count` bytes (fewer for a shorter member)."""
        with open(self.tar, "rb") as handle:
            handle.seek(self.offset)
            return handle.read(min(count, self.size))

    def check(self) -> str | None:
        """None while the tar header at `header_offset` still describes these bytes; else what changed."""
        if self.header_offset < 0:
            return "no recorded header offset"
        try:
            info = read_header(self.tar, self.header_offset)
        except OSError as error:
            return f"cannot read its header ({error.strerror or error})"
        expected = self.data_member or self.member
        if info is None:
            return f"no tar header at byte {self.header_offset}"
        if info.name != expected or info.offset_data != self.offset or info.size != self.size:
            return (
                f"the header at byte {self.header_offset} describes {info.name!r} ({info.size} bytes at "
                f"{info.offset_data}), not {expected!r} ({self.size} bytes at {self.offset})"
            )
        return None


_EXTENDED_HEADERS = {
    tarfile.XHDTYPE,
    tarfile.XGLTYPE,
    tarfile.SOLARIS_XHDTYPE,
    tarfile.GNUTYPE_LONGNAME,
    tarfile.GNUTYPE_LONGLINK,
    tarfile.GNUTYPE_SPARSE,
}


def read_header(tar: Path, header_offset: int) -> tarfile.TarInfo | None:
    """The member whose header starts at `header_offset` of `tar`, as tarfile reads it while listing the tar;
    None when no valid header is there. A plain header is parsed from its one block; extended ones (pax, GNU
    long names, old GNU sparse) through tarfile itself."""
    with open(tar, "rb") as handle:
        handle.seek(header_offset)
        block = handle.read(tarfile.BLOCKSIZE)
        try:
            info = tarfile.TarInfo.frombuf(block, tarfile.ENCODING, "surrogateescape")
        except tarfile.HeaderError:
            return None
        if info.type not in _EXTENDED_HEADERS:
            info.offset, info.offset_data = header_offset, header_offset + tarfile.BLOCKSIZE
            return info
        handle.seek(0)
        try:
            with tarfile.open(fileobj=handle, mode="r:") as archive:
                found = archive.next()  # the first member, read when the tar opened
                if header_offset != 0:  # now that it is taken, next() reads the header at `offset`
                    archive.offset = header_offset
                    found = archive.next()
        except (tarfile.TarError, EOFError):
            return None
        if found is None or found.offset != header_offset:
            return None
        return found


def _stem(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    for suffix in VIDEO_EXTENSIONS:
        if base.lower().endswith(suffix) and len(base) > len(suffix):
            return base[: -len(suffix)]
    return None


def _compressed_suffix(name: str) -> str | None:
    lowered = name.lower()
    return next((suffix for suffix in COMPRESSED_TAR_SUFFIXES if lowered.endswith(suffix)), None)


# a tar member's entry: [tar, member, data offset, size, header offset, data member or None, unreadable or None]
TarEntry = list


@dataclass
class VideoIndex:
    root: Path
    entries: dict[str, str | TarEntry] = field(default_factory=dict)  # stem -> relative path, or a TarEntry
    signature: dict[str, list[int]] = field(default_factory=dict)  # folder -> [size, mtime_ns]; tar: + ctime_ns
    built: bool = False  # built now (False: read from the cache)
    linked: set[str] = field(default_factory=set)  # stems of symlinked video files (not indexed: never followed)
    rebuilt_tars: list[str] = field(default_factory=list)  # tars whose cached entries were stale (rebuilt)

    def locate(self, docid: str) -> Path | TarMember | None:
        entry = self.entries.get(docid)
        if entry is None:
            return None
        if isinstance(entry, str):
            return self.root / entry
        member = _member(self.root, entry)
        if self.built or member.check() is None:
            return member
        # the cached offset no longer holds this member: re-read that tar's headers, then look again
        self._rebuild_tar(entry[0])
        entry = self.entries.get(docid)
        return _member(self.root, entry) if isinstance(entry, list) else None

    def _rebuild_tar(self, relative: str) -> None:
        kept = {
            stem: entry
            for stem, entry in self.entries.items()
            if not (isinstance(entry, list) and entry[0] == relative)
        }
        origin = {stem: _where(entry) for stem, entry in kept.items()}
        for stem, entry in _tar_entries(self.root, relative):
            _add(kept, origin, stem, entry, _where(entry), self.root)
        self.entries = dict(sorted(kept.items()))
        self.rebuilt_tars.append(relative)
        _save(self)

    def summary(self) -> dict:
        by_kind = Counter("tar member" if isinstance(entry, list) else "file" for entry in self.entries.values())
        by_suffix = Counter(
            Path(entry[1] if isinstance(entry, list) else entry).suffix.lower() for entry in self.entries.values()
        )
        unreadable = sorted(_where(entry) for entry in self.entries.values() if isinstance(entry, list) and entry[6])
        return {
            "root": str(self.root),
            "videos": len(self.entries),
            "files": by_kind["file"],
            "tar_members": by_kind["tar member"],
            "tars": sum(1 for name in self.signature if name.endswith(".tar")),
            "by_extension": dict(sorted(by_suffix.items())),
            "unreadable_members": unreadable,
        }


def _member(root: Path, entry: TarEntry) -> TarMember:
    tar, member, offset, size, header_offset, data_member, unreadable = entry
    return TarMember(root / tar, member, int(offset), int(size), int(header_offset), data_member, unreadable)


def _where(entry: str | TarEntry) -> str:
    return entry if isinstance(entry, str) else f"{entry[0]}::{entry[1]}"


def _add(entries: dict, origin: dict[str, str], stem: str, entry: str | TarEntry, where: str, root: Path) -> None:
    if stem in entries:
        raise UsageError(f"{root}: two videos for docid {stem!r}: {origin[stem]} and {where}")
    entries[stem] = entry
    origin[stem] = where


def _list_folder(root: Path, directory: Path) -> list[os.DirEntry]:
    try:
        with os.scandir(directory) as listing:
            return list(listing)
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise UsageError(
            f"--videos {root}: cannot list the folder {directory} ({reason}); its videos would all be reported "
            "missing: fix its permissions, or move it out of --videos"
        ) from None


def _scan(root: Path) -> tuple[dict[str, list[int]], list[str], list[str], list[str]]:
    """(folder -> [size, mtime_ns] and tar -> [size, mtime_ns, ctime_ns], video files, tars, symlinked videos'
    stems), relative to root, sorted: deterministic. A folder that cannot be listed or a compressed tar shard
    is a `UsageError`: the videos in it would otherwise be reported missing, as if there were none."""
    signature: dict[str, list[int]] = {}
    files: list[str] = []
    tars: list[str] = []
    linked: list[str] = []
    compressed: list[str] = []
    pending = [""]
    while pending:
        relative = pending.pop()
        directory = root / relative if relative else root
        status = directory.stat()
        signature[relative or "."] = [status.st_size, status.st_mtime_ns]
        for entry in _list_folder(root, directory):
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
                    signature[name] = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
                    tars.append(name)
                elif _compressed_suffix(entry.name):
                    compressed.append(name)
                elif _stem(entry.name) is not None:
                    files.append(name)
    if compressed:
        first = sorted(compressed)[0]
        suffix = _compressed_suffix(first) or ""
        more = f" (and {len(compressed) - 1} more)" if len(compressed) > 1 else ""
        raise UsageError(
            f"--videos {root}: {first} is a compressed tar shard{more}, which cannot be read in place: "
            f"decompress it to a plain .tar (`{COMPRESSED_TAR_SUFFIXES[suffix]} {first}`) and remove the "
            "compressed copy"
        )
    return signature, sorted(files), sorted(tars), sorted(linked)


def _not_a_tar(path: Path, error: BaseException) -> UsageError:
    try:
        with open(path, "rb") as handle:
            head = handle.read(6)
    except OSError:
        head = b""
    for magic, name in _COMPRESSION_MAGIC.items():
        if head.startswith(magic):
            return UsageError(
                f"{path}: a {name}-compressed tar named .tar, which cannot be read in place: decompress it "
                f"(e.g. `mv {path.name} {path.name}.{'gz' if name == 'gzip' else name}` and decompress that)"
            )
    return UsageError(f"{path}: not a readable uncompressed tar ({error})")


def _tar_entries(root: Path, relative: str) -> list[tuple[str, TarEntry]]:
    """(stem, TarEntry) of every video member of one tar, in tar order. A hard link reads the member it points
    to (the latest before it of that name, as extraction would); a name stored twice (`tar rf`) is an error."""
    path = root / relative
    regular: dict[str, tarfile.TarInfo] = {}  # by name, so far: what a hard link met at this point points to
    found: dict[str, tarfile.TarInfo] = {}
    entries: list[tuple[str, TarEntry]] = []
    try:
        with tarfile.open(path, mode="r:") as archive:
            for member in archive:
                if member.isreg():
                    regular[member.name] = member
                stem = _stem(member.name)
                if stem is None or not (member.isreg() or member.islnk()):
                    continue
                if member.name in found:
                    first = found[member.name]
                    raise UsageError(
                        f"{path}: holds {member.name} twice, an appended copy (`tar rf`): at bytes "
                        f"{first.offset} and {member.offset}; tar extracts the last one. Keep one copy: "
                        f"`tar --delete --occurrence=1 -f {relative} {member.name}` deletes the first"
                    )
                found[member.name] = member
                data = regular.get(member.linkname) if member.islnk() else member
                if data is None:
                    raise UsageError(
                        f"{path}::{member.name}: a hard link to {member.linkname!r}, which is not a file "
                        "stored before it in this tar"
                    )
                unreadable = SPARSE_MEMBER if data.issparse() else None
                data_member = data.name if data is not member else None
                entries.append(
                    (stem, [relative, member.name, data.offset_data, data.size, data.offset, data_member, unreadable])
                )
    except (tarfile.TarError, OSError) as error:
        raise _not_a_tar(path, error) from None
    return entries


def _cache_path(root: Path) -> Path:
    base = Path(os.environ.get("RANKVIDEO_CACHE") or Path.home() / ".cache" / "rankvideo")
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    return base / "video-index" / f"{key}.json"


def _save(index: VideoIndex) -> None:
    from rankvideo_cli.io.atomic import atomic_write_text

    payload = {
        "version": INDEX_VERSION,
        "root": str(index.root.resolve()),
        "signature": index.signature,
        "entries": index.entries,
    }
    with contextlib.suppress(OSError):  # an unwritable cache costs a rebuild next time, nothing else
        atomic_write_text(_cache_path(index.root), json.dumps(payload, sort_keys=True, separators=(",", ":")) + "\n")


def build_index(root: str | Path, *, use_cache: bool = True) -> VideoIndex:
    """The index of `root` (a directory: `options.VideoSource` checked it), from the cache when nothing under it
    changed."""
    root = Path(root)
    signature, files, tars, linked = _scan(root)
    cache = _cache_path(root)
    if use_cache:
        try:
            cached = json.loads(cache.read_text(encoding="utf-8"))
            if cached.get("version") == INDEX_VERSION and cached.get("signature") == signature:
                return VideoIndex(root, cached["entries"], signature, built=False, linked=set(linked))
        except (OSError, ValueError, AttributeError):
            pass
    entries: dict[str, str | TarEntry] = {}
    origin: dict[str, str] = {}
    for relative in files:
        _add(entries, origin, _stem(relative) or "", relative, relative, root)
    for relative in tars:
        for stem, entry in _tar_entries(root, relative):
            _add(entries, origin, stem, entry, _where(entry), root)
    index = VideoIndex(root, dict(sorted(entries.items())), signature, built=True, linked=set(linked))
    _save(index)
    return index
