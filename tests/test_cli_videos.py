"""`rankvideo videos DIR`: what `--videos DIR` finds, as a table or JSON, from the index cache or read again.

What the index itself finds (folders, tar shards, their damage and changes) is tested in test_videos_index.py,
through this command and `rerank` alike.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers import SAMPLE, assert_refused, invoke, invoke_ok


def test_the_multivent_sample_is_counted_as_a_table_and_as_json(tmp_path: Path) -> None:
    videos = tmp_path / "videos"
    shutil.copytree(SAMPLE / "multivent" / "videos", videos)
    first = json.loads(invoke_ok("videos", videos, "--json").stdout)
    assert (first["videos"], first["files"], first["tars"], first["tar_members"]) == (12, 3, 2, 9)
    assert first["by_extension"] == {".mp4": 12} and first["unreadable_members"] == []
    assert first["index"] != "from the cache"  # a folder never seen: read now
    again = json.loads(invoke_ok("videos", videos, "--json").stdout)
    assert again["index"] == "from the cache" and again["videos"] == 12
    rebuilt = json.loads(invoke_ok("videos", videos, "--json", "--rebuild").stdout)
    assert rebuilt["index"] != "from the cache" and rebuilt["videos"] == 12

    table = invoke_ok("videos", videos).stdout
    rows = {" ".join(line.split()[:-1]): line.split()[-1] for line in table.splitlines() if line.strip()}
    assert (rows["videos"], rows["tar members"], rows["tars"]) == ("12", "9", "2")
    assert all(len(line) <= 80 for line in table.splitlines())


def test_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    assert_refused(invoke("videos", tmp_path / "nope"), "nope: not a directory")
