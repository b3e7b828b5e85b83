"""`rankvideo videos`: what `--videos DIR` finds, by docid, in folders and inside `.tar` shards."""

from __future__ import annotations

import json

from rich.console import Console
from rich.table import Table

from rankvideo_cli.io.atomic import write_stdout
from rankvideo_cli.jobs.preflight import check_rankvideo_cache
from rankvideo_cli.messages import say
from rankvideo_cli.options import VideoSource
from rankvideo_cli.videos.index import SPARSE_MEMBER, build_index


def run_videos(source: VideoSource, *, as_json: bool, rebuild: bool, console: Console) -> dict:
    """The index's counts (a table, or JSON on stdout); each member that cannot be read is named on stderr."""
    check_rankvideo_cache()
    directory = source.videos
    index = build_index(directory, use_cache=not rebuild)
    summary = {**index.summary(), "index": "built now" if index.built else "from the cache"}
    if as_json:
        write_stdout(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        return summary
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key in ("root", "videos", "files", "tar_members", "tars", "index"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    for suffix, count in summary["by_extension"].items():
        table.add_row(f"  {suffix}", str(count))
    if summary["unreadable_members"]:
        table.add_row("unreadable members", str(len(summary["unreadable_members"])))
    Console(highlight=False).print(table)
    for where in summary["unreadable_members"]:
        say(console, f"{directory / where}: {SPARSE_MEMBER}")
    return summary
