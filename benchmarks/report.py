"""`rankvideo report` over 100 queries x top 10 (issue 23): the time to make the page and its size, with the
thumbnails decoded from the videos against read from a frame cache, measured in the same run.

The inputs: 200 distinct synthesized clips (h264, about 480-880 x 272, 25 fps, 12 s, a keyframe every 2 s: the
same bytes on every run, made once into --work-dir), a first-stage run of 100 queries x 30 candidates drawn from them, a
reranked run (the same candidates, other scores), stored scores and qrels. The frame cache is filled by
`rankvideo sample` beforehand (its time is reported apart: CPU nodes do it once, before the GPU jobs).

A second, smaller case stands for MultiVENT's long videos: 20 queries x 30 candidates over 30 docids that all
hold benchmarks/frame_cache.py's realistic clip (158 s of 1280x720 at 30 fps, a keyframe every 5 s).

With `--against CHECKOUT` (another checkout of rankvideo, such as `git worktree add /tmp/base COMMIT`) it measures
instead one run's report at 100 queries x top 10 made by this checkout and by that one on the same inputs, in
turns, `--repeats` times each (the fastest time kept): a change's cost in time and bytes, measured beside the
code it changes.

    python benchmarks/report.py [--work-dir DIR] [--decode-workers N] [--json out.json]
    python benchmarks/report.py --against /tmp/base [--repeats 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from video_factory import VideoCache  # noqa: E402

QUERIES, CANDIDATES, TOP, VIDEOS = 100, 30, 10, 200


def synthetic_videos(work: Path, count: int) -> list[Path]:
    clips = VideoCache(work.parent / "clips")
    # distinct content per clip: the painted texture follows the frame size
    return [clips.get(width=480 + 2 * number, height=272, fps=25, seconds=12.0, gop=50) for number in range(count)]


def long_videos(work: Path, count: int) -> list[Path]:
    from frame_cache import realistic_clip

    return [realistic_clip(work.parent)] * count


def make_inputs(work: Path, sources: list[Path], queries_count: int, candidates: int) -> dict[str, Path]:
    videos = work / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for number, source in enumerate(sources):
        target = videos / f"v{number:04d}.mp4"
        if not target.exists():
            os.link(source, target)
    rng = random.Random(20261203)
    first, reranked, scores, qrels, queries = [], [], [], [], ["qid\ttext"]
    for q in range(queries_count):
        qid = f"q{q:03d}"
        queries.append(f"{qid}\tquery number {q}")
        docids = rng.sample(range(len(sources)), candidates)
        for rank, doc in enumerate(docids, start=1):
            docid = f"v{doc:04d}"
            first.append(f"{qid} Q0 {docid} {rank} {100 - rank} first-stage")
            delta = rng.uniform(-8, 3)
            scores.append(json.dumps({"qid": qid, "docid": docid, "logit_delta": delta}))
            reranked.append(f"{qid} Q0 {docid} {rank} {delta:.6f} rankvideo")
            qrels.append(f"{qid} 0 {docid} {int(rng.random() < 0.15)}")
    paths = {name: work / file for name, file in [("run", "first_stage.trec"), ("reranked", "reranked.trec"),
             ("scores", "scores.jsonl"), ("qrels", "qrels.txt"), ("queries", "queries.tsv")]}  # fmt: skip
    for name, lines in [("run", first), ("reranked", reranked), ("scores", scores), ("qrels", qrels),
                        ("queries", queries)]:  # fmt: skip
        paths[name].write_text("\n".join(lines) + "\n")
    paths["videos"] = videos
    return paths


def timed(command: list[str], checkout: Path = REPO) -> tuple[float, str]:
    """Run a command (with `python -m`, from `checkout`: its rankvideo_cli is the one imported); its seconds and
    its last line on stderr."""
    started = time.perf_counter()
    completed = subprocess.run(command, capture_output=True, text=True, cwd=checkout)
    elapsed = time.perf_counter() - started
    if completed.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{completed.stderr}")
    return elapsed, completed.stderr.strip().splitlines()[-1]


def measure(paths: dict[str, Path], work: Path, workers: list[str]) -> dict:
    rankvideo = [sys.executable, "-m", "rankvideo_cli.cli"]
    cache = work / "frames"
    sample_s, _ = timed([*rankvideo, "sample", str(paths["reranked"]), "--videos", str(paths["videos"]),
                         "--frames-cache", str(cache), "--depth", str(TOP), *workers])  # fmt: skip
    common = [*rankvideo, "report", str(paths["reranked"]), "--baseline", str(paths["run"]), "--qrels",
              str(paths["qrels"]), "--queries", str(paths["queries"]), "--videos", str(paths["videos"]),
              "--scores", str(paths["scores"]), "--top", str(TOP), *workers]  # fmt: skip
    results: dict = {"sample_seconds": round(sample_s, 2)}
    for name, extra in [("decoded", []), ("frame_cache", ["--frames-cache", str(cache)])]:
        single = work / f"report-{name}.html"
        seconds, summary = timed([*common, *extra, "-o", str(single)])
        directory = work / f"site-{name}"
        dir_seconds, _ = timed([*common, *extra, "-o", f"{directory}/"])
        site_bytes = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
        results[name] = {
            "seconds": round(seconds, 2),
            "bytes": single.stat().st_size,
            "directory_seconds": round(dir_seconds, 2),
            "directory_index_bytes": (directory / "index.html").stat().st_size,
            "directory_bytes": site_bytes,
            "summary": summary,
        }
    results["decoded_over_cache"] = round(results["decoded"]["seconds"] / results["frame_cache"]["seconds"], 2)
    return results


def compare(paths: dict[str, Path], work: Path, workers: list[str], against: Path, repeats: int) -> dict:
    """One run's report (with its baseline, qrels, queries, scores and videos) made by this checkout and by
    `against` on the same inputs, in turns: decoded into one file, from the frame cache into one file, and from the
    frame cache into a directory. Each figure is the fastest of `repeats` tries; the bytes are the page's."""
    rankvideo = [sys.executable, "-m", "rankvideo_cli.cli"]
    cache = work / "frames"
    if not cache.exists():
        timed([*rankvideo, "sample", str(paths["reranked"]), "--videos", str(paths["videos"]), "--frames-cache",
               str(cache), "--depth", str(TOP), *workers])  # fmt: skip
    common = [*rankvideo, "report", str(paths["reranked"]), "--baseline", str(paths["run"]), "--qrels",
              str(paths["qrels"]), "--queries", str(paths["queries"]), "--videos", str(paths["videos"]),
              "--scores", str(paths["scores"]), "--top", str(TOP), *workers]  # fmt: skip
    variants = {
        "decoded": ([], "report-decoded.html"),
        "frame_cache": (["--frames-cache", str(cache)], "report-frame_cache.html"),
        "frame_cache_directory": (["--frames-cache", str(cache)], "site/"),
    }
    checkouts = {"this": REPO, "against": against.resolve()}
    results: dict = {name: {"checkout": str(path)} for name, path in checkouts.items()}
    for variant, (extra, target) in variants.items():
        best = {name: math.inf for name in checkouts}
        for _ in range(repeats):
            for name, checkout in checkouts.items():  # in turns: a busy spell of the machine slows both alike
                (work / name).mkdir(parents=True, exist_ok=True)
                output = f"{work / name}/{target}"  # text: the trailing slash of a directory must survive
                seconds, _ = timed([*common, *extra, "-o", output], checkout)
                best[name] = min(best[name], seconds)
        for name in checkouts:
            page = work / name / (target + "index.html" if target.endswith("/") else target)
            results[name][variant] = {"seconds": round(best[name], 2), "bytes": page.stat().st_size}
    results["this_over_against"] = {
        variant: {
            measure: round(results["this"][variant][measure] / results["against"][variant][measure], 3)
            for measure in ("seconds", "bytes")
        }
        for variant in variants
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "rankvideo-report-bench")
    parser.add_argument("--decode-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--against", type=Path, help="another checkout: compare one run's report with its")
    parser.add_argument("--repeats", type=int, default=3, help="with --against: tries of each, the fastest kept")
    options = parser.parse_args()
    options.work_dir = options.work_dir.resolve()  # the commands run from either checkout
    workers = ["--decode-workers", str(options.decode_workers)]
    report = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "decode_workers": options.decode_workers,
        "top": TOP,
    }
    short = options.work_dir / "short"
    paths = make_inputs(short, synthetic_videos(short, VIDEOS), QUERIES, CANDIDATES)
    if options.against is not None:
        compared = compare(paths, short, workers, options.against, options.repeats)
        report["one_run"] = {"queries": QUERIES, "videos": VIDEOS, **compared}
    else:
        report["short_clips"] = {"queries": QUERIES, "videos": VIDEOS, **measure(paths, short, workers)}
        long = options.work_dir / "long"
        paths = make_inputs(long, long_videos(long, 30), 20, CANDIDATES)
        report["long_720p"] = {"queries": 20, "videos": 30, **measure(paths, long, workers)}
    print(json.dumps(report, indent=2))
    if options.json:
        options.json.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
