"""docid -> video file: a path pattern, the MultiVENT 2.0 layout, or an explicit map; never outside the root."""

from __future__ import annotations

import hashlib
from pathlib import Path

from rankvideo_cli.errors import InputError, UsageError
from rankvideo_cli.io.text import numbered_lines, read_text

DEFAULT_PATTERN = "{docid}.mp4"
MULTIVENT_PATTERN = "{multivent_dir}/{docid}.mp4"
# Tried in order when the pattern names no extension.
VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


class UnsafeDocid(InputError):
    """A docid that would resolve outside the videos directory."""


class VideoResolver:
    """Resolves docids to existing video files under `root`.

    Exactly one source: `pattern` (str.format with `docid`, and `multivent_dir` = the MultiVENT 2.0 shard
    folder `{int(docid)//100+1:06d}`), or `video_map` (TSV docid<TAB>path; relative paths are relative to
    `root`). Resolution never leaves `root`: `..` components, absolute paths and symlinks pointing outside
    are rejected.
    """

    def __init__(
        self,
        root: Path,
        *,
        pattern: str = DEFAULT_PATTERN,
        video_map: Path | None = None,
        multivent: bool = False,
    ) -> None:
        if multivent and video_map is not None:
            raise UsageError("--multivent and --video-map are exclusive")
        if not root.is_dir():
            raise UsageError(f"--videos {root}: not a directory")
        self.root = root
        self._real_root = root.resolve()
        self.pattern = MULTIVENT_PATTERN if multivent else pattern
        self.multivent = multivent
        self.map_path = video_map
        self._map = self._read_map(video_map) if video_map is not None else None
        if self._map is None:
            self._check_pattern(self.pattern)

    @staticmethod
    def _check_pattern(pattern: str) -> None:
        try:
            pattern.format(docid="x", multivent_dir="000001")
        except (KeyError, IndexError, ValueError) as error:
            raise UsageError(f"--video-pattern {pattern!r}: only {{docid}} may be used ({error})") from None

    @staticmethod
    def _read_map(path: Path) -> dict[str, str]:
        mapping: dict[str, str] = {}
        where: dict[str, int] = {}
        for number, line in numbered_lines(read_text(path)):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                raise InputError(path, number, "expected docid<TAB>path")
            docid, target = fields[0].strip(), fields[1].strip()
            if docid in mapping:
                raise InputError(path, number, f"duplicate docid {docid!r} (first at line {where[docid]})")
            mapping[docid], where[docid] = target, number
        return mapping

    def _candidates(self, docid: str) -> list[str]:
        if self._map is not None:
            return [self._map[docid]] if docid in self._map else []
        multivent_dir = ""
        if self.multivent:
            try:
                multivent_dir = f"{int(docid) // 100 + 1:06d}"
            except ValueError:
                return []  # MultiVENT docids are integers; anything else has no video
        relative = self.pattern.format(docid=docid, multivent_dir=multivent_dir)
        if Path(relative).suffix:
            return [relative]
        return [relative + extension for extension in VIDEO_EXTENSIONS]

    def _inside_root(self, docid: str, relative: str) -> Path:
        candidate = Path(relative)
        if candidate.is_absolute() or ".." in candidate.parts:
            raise UnsafeDocid(
                self.map_path or "run", None, f"docid {docid!r} would escape {self.root}: {relative}"
            )
        return self.root / candidate

    def resolve(self, docid: str) -> Path | None:
        """The existing video file for `docid`, or None when there is none. Raises `UnsafeDocid`."""
        for relative in self._candidates(docid):
            path = self._inside_root(docid, relative)
            if path.is_file():
                if not path.resolve().is_relative_to(self._real_root):
                    raise UnsafeDocid(
                        self.map_path or "run", None, f"docid {docid!r}: {path} links outside {self.root}"
                    )
                return path
        return None

    def describe(self) -> dict[str, str | None]:
        return {
            "root": str(self.root),
            "pattern": None if self._map is not None else self.pattern,
            "video_map": str(self.map_path) if self.map_path else None,
        }

    def fingerprint(self) -> str:
        payload = repr(sorted(self.describe().items())) + repr(sorted((self._map or {}).items()))
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
