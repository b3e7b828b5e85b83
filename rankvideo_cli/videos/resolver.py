"""docid -> video file under a root directory: a path pattern, the MultiVENT 2.0 layout, or an explicit map.

Resolution never reads outside the root. A docid is *unsafe* (rejected, never opened) when its path would have
a `..` component or be absolute, or when the existing file it names resolves (symlinks followed) outside
`root.resolve()`. The root itself may be a symlink. Unsafe docids resolve to None like missing videos (the
pipeline counts them under its missing-video policy) and are listed in `VideoResolver.rejected` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import string
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rankvideo_cli.errors import InputError, UsageError
from rankvideo_cli.io.text import numbered_lines, read_text
from rankvideo_cli.videos.index import VIDEO_EXTENSIONS, TarMember, VideoIndex, build_index

DEFAULT_PATTERN = "{docid}.mp4"
# `{multivent_dir}` is the MultiVENT 2.0 shard folder of an integer docid: int(docid) // 100 + 1, 6 digits.
PRESETS = {"multivent": "{multivent_dir}/{docid}.mp4"}
PATTERN_FIELDS = ("docid", "multivent_dir")

FOUND = "found"
MISSING = "missing"  # a well-formed docid with no file
UNSAFE = "unsafe"  # would leave the root
INVALID = "invalid"  # the docid cannot name a file (e.g. not an integer under the MultiVENT layout)


@dataclass(frozen=True)
class Resolution:
    docid: str
    status: str  # FOUND, MISSING, UNSAFE or INVALID
    path: Path | TarMember | None = None
    reason: str = ""


def multivent_dir(docid: str) -> str:
    """MultiVENT 2.0 shard folder of an integer docid (the reference's `{int(id)//100+1:06d}`)."""
    return f"{int(docid) // 100 + 1:06d}"


def _pattern_fields(pattern: str) -> set[str]:
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(pattern) if field is not None}
    except ValueError as error:
        raise UsageError(f"--video-pattern {pattern!r}: {error}") from None
    unknown = sorted(fields - set(PATTERN_FIELDS))
    if unknown or "docid" not in fields:
        raise UsageError(
            f"--video-pattern {pattern!r} must use {{docid}} and may use {{multivent_dir}}; found {unknown or 'none'}"
        )
    return fields


class VideoResolver:
    """Resolves docids to existing video files under `root`.

    Exactly one source of paths:
    - `pattern` (default `{docid}.mp4`): `str.format` with `docid` (and `multivent_dir`, see `multivent_dir()`);
      a pattern without an extension tries `VIDEO_EXTENSIONS` in order. The default pattern may accompany
      another source (it is then unused);
    - `multivent=True`: `{multivent_dir}/{docid}.mp4`; a docid that is not an integer
      is INVALID;
    - `video_map`: a TSV file `docid<TAB>path`, paths relative to `root` (absolute paths are rejected like any
      path leaving the root); a map line's errors name the map file and line.
    """

    def __init__(
        self,
        root: str | Path,
        *,
        pattern: str | None = None,
        video_map: str | Path | None = None,
        multivent: bool = False,
    ) -> None:
        # The sources were checked by `options.VideoSource`, which makes every resolver: `root` is a directory and
        # at most one of pattern, multivent and video_map is given (the default pattern may accompany another).
        preset = "multivent" if multivent else None
        self.root = Path(root)
        self._real_root = self.root.resolve()
        self._root_text = str(self.root)
        self.preset = preset
        self.pattern = PRESETS[preset] if preset else (pattern or DEFAULT_PATTERN)
        self.map_path = Path(video_map) if video_map is not None else None
        self._map = self._read_map(self.map_path) if self.map_path is not None else None
        if self._map is None:
            self._fields = _pattern_fields(self.pattern)
        self.rejected: dict[str, str] = {}  # docid -> reason, for the UNSAFE and INVALID docids seen
        self._pattern_has_suffix = bool(PurePosixPath(self.pattern).suffix)
        # the default layout also finds a docid's video in sub-folders and .tar shards (videos/index.py)
        self._index_fallback = self._map is None and preset is None and self.pattern == DEFAULT_PATTERN
        self._built_index: VideoIndex | None = None

    @staticmethod
    def _read_map(path: Path) -> dict[str, str]:
        mapping: dict[str, str] = {}
        where: dict[str, int] = {}
        for number, line in numbered_lines(read_text(path)):
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                raise InputError(path, number, f"expected docid<TAB>path, found {len(fields)} tab-separated fields")
            docid, target = fields[0].strip(), fields[1].strip()
            first = where.setdefault(docid, number)
            if first != number:
                raise InputError(path, number, f"duplicate docid {docid!r} (first at line {first})")
            mapping[docid] = target
        return mapping

    def _relative_candidates(self, docid: str) -> list[str] | Resolution:
        if self._map is not None:
            return [self._map[docid]] if docid in self._map else []
        values = {"docid": docid}
        if "multivent_dir" in self._fields:
            try:
                values["multivent_dir"] = multivent_dir(docid)
            except ValueError:
                return Resolution(docid, INVALID, reason=f"docid {docid!r} is not an integer (MultiVENT layout)")
        relative = self.pattern.format(**values)
        if self._pattern_has_suffix:  # the pattern's, not the docid's: "a.b" may be a docid
            return [relative]
        with_extensions = [relative + extension for extension in VIDEO_EXTENSIONS]
        if PurePosixPath(relative).suffix.lower() in VIDEO_EXTENSIONS:  # the docid carries its own extension
            return [relative, *with_extensions]
        return with_extensions

    def _unsafe(self, docid: str, relative: str) -> str | None:
        if "\0" in relative:
            return f"docid {docid!r}: path contains a NUL byte"
        # string tests, not Path objects: this runs for each of 100k docids
        if relative.startswith("/") or ".." in relative.split("/"):
            return f"docid {docid!r}: path {relative!r} would leave {self.root}"
        return None

    def lookup(self, docid: str) -> Resolution:
        """Where the video of `docid` is, or why there is none. Never touches anything outside the root."""
        candidates = self._relative_candidates(docid)
        if isinstance(candidates, Resolution):
            self.rejected[docid] = candidates.reason
            return candidates
        for relative in candidates:
            reason = self._unsafe(docid, relative)
            if reason is not None:
                self.rejected[docid] = reason
                return Resolution(docid, UNSAFE, reason=reason)
        if self._index_fallback:
            # the index knows every regular video file under the root: no system call per docid (100k on a
            # network file system); only a symlinked file, which it never follows, needs the checks below
            index = self._index()
            indexed = index.locate(docid)
            if indexed is not None:
                return Resolution(docid, FOUND, path=indexed)
            if docid not in index.linked:
                return self._missing(docid, candidates)
        too_long = None
        for relative in candidates:
            full = os.path.join(self._root_text, relative)
            try:
                mode = os.lstat(full).st_mode
                linked = stat.S_ISLNK(mode)
                if linked:
                    mode = os.stat(full).st_mode
                if not stat.S_ISREG(mode):
                    continue
            except (FileNotFoundError, NotADirectoryError):
                continue
            except OSError as error:  # a docid longer than the file-name limit (ENAMETOOLONG), and the like
                too_long = f"{error.strerror or error}"
                continue
            path = self.root / relative
            # a plain file directly in the root cannot be elsewhere; anything else is resolved and checked
            if (linked or "/" in relative) and not path.resolve().is_relative_to(self._real_root):
                reason = f"docid {docid!r}: {path} links outside {self.root}"
                self.rejected[docid] = reason
                return Resolution(docid, UNSAFE, reason=reason)
            return Resolution(docid, FOUND, path=path)
        if too_long is not None:
            return Resolution(docid, MISSING, reason=f"docid {docid!r} cannot name a file ({too_long.lower()})")
        return self._missing(docid, candidates)

    def _missing(self, docid: str, candidates: list[str]) -> Resolution:
        shown = ", ".join(candidates[:3]) + (f" and {len(candidates) - 3} more" if len(candidates) > 3 else "")
        tried = f" (tried {shown})" if candidates else " (not in the video map)"
        if self._index_fallback:
            tried = f" (tried {shown}, and every folder and .tar under it)"
        return Resolution(docid, MISSING, reason=f"no file for docid {docid!r} under {self.root}{tried}")

    def _index(self) -> VideoIndex:
        if self._built_index is None:
            self._built_index = build_index(self.root)
        return self._built_index

    def resolve(self, docid: str) -> Path | TarMember | None:
        """The existing video file of `docid`, or None (missing, unsafe or invalid: see `lookup`)."""
        return self.lookup(docid).path

    def describe(self) -> dict[str, str | None]:
        """How docids become paths, for the run manifest."""
        return {
            "root": str(self.root),
            "pattern": None if self._map is not None else self.pattern,
            "preset": self.preset,
            "video_map": str(self.map_path) if self.map_path is not None else None,
        }

    def fingerprint(self) -> str:
        """Changes whenever a docid could map to a different file (root, pattern, preset or the map's content)."""
        payload = json.dumps(
            {
                "describe": self.describe(),
                "map": sorted((self._map or {}).items()),
                "extensions": VIDEO_EXTENSIONS,
            },
            sort_keys=True,
        )
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]
