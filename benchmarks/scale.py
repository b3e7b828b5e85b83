"""`rankvideo rerank` at MultiVENT size: read, plan, store read and write of a 2.5M-line first stage.

    python benchmarks/scale.py [--queries 2500] [--depth 1000] [--store-pairs 250000] [--json OUT]

Generates the inputs with `synth_runs.py` (2,500 queries x 1,000 candidates by default), then measures, each in
a fresh process (wall time around it, peak RSS from `os.wait4`):

- `phases`: in one process, the library calls `rankvideo rerank` makes, timed one by one: read (run and
  queries, validated), plan (resolve every docid within depth 100, plan the pairs, triage against the store),
  store read (a score store of `--store-pairs` records, as resume and merge read it), rank and write (the
  ranking with its unscored tail and the atomic write of the 2.5M-line run);
- `rerank`: the CLI end to end, no video found, so nothing is scored (the case issue 10 measured at 42 s and
  2.7 GB);
- `dry-run`: `rankvideo rerank --dry-run` on the same inputs;
- `merge`: `rankvideo merge` of a store of `--store-pairs` scores for the same run (the pairs' videos exist as
  empty files, so every pair is answered from the store).
Goals (issue 10): read + plan + write within 10 s and 1 GB; a 250k-pair store read back within 5 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from processes import measure
from synth_runs import write_inputs

PHASES = r"""
import json, sys, time
from pathlib import Path
run_path, queries_path, videos, store, out = sys.argv[1:6]
timings = {}
started = time.perf_counter()
from rankvideo_cli.io.queries import read_queries
from rankvideo_cli.io.runs import iter_trec_chunks, read_run
from rankvideo_cli.io.atomic import write_output_chunks
from rankvideo_cli.pipeline.plan import triage_pairs, plan_pairs
from rankvideo_cli.evaluation.ranking import rerank
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.pipeline.store import read_store, store_namespaces
from rankvideo_cli.videos.identity import VideoIdentities
from rankvideo_cli.videos.resolver import VideoResolver
from rankvideo_cli.pipeline.request import MemoResolver
timings["import_s"] = time.perf_counter() - started
mark = time.perf_counter()
run = read_run(run_path)
queries = read_queries(queries_path)
timings["read_s"] = time.perf_counter() - mark
mark = time.perf_counter()
resolver = MemoResolver(VideoResolver(Path(videos)))
plan = plan_pairs(run, queries, resolver, 100)
empty = read_store(Path(store) / "none", "m", SamplingConfig().fingerprint())
triage = triage_pairs(plan, empty, None, False, VideoIdentities())
timings["plan_s"] = time.perf_counter() - mark
mark = time.perf_counter()
(model, settings), = store_namespaces(Path(store))
contents = read_store(Path(store), model, settings)
timings["store_read_s"] = time.perf_counter() - mark
timings["store_pairs"] = len(contents.scores)
mark = time.perf_counter()
ranked = rerank(run, {}, depth=100)
write_output_chunks(iter_trec_chunks(ranked, "rankvideo"), out)
timings["rank_write_s"] = time.perf_counter() - mark
timings["pairs_within_depth"] = len(plan.pairs)
print(json.dumps(timings))
"""


def write_store(store: Path, run_path: Path, videos: Path, pairs: int) -> None:
    """A score store of `pairs` scores of the run's first candidates, as `rankvideo rerank --shard` writes it,
    with a shard manifest, and an empty file per video so that merge resolves them."""
    from rankvideo_cli.io.runs import read_run
    from rankvideo_cli.pipeline.manifest import build_manifest, write_manifest
    from rankvideo_cli.pipeline.result import PipelineCounts, PipelineResult, PipelineTimings
    from rankvideo_cli.pipeline.store import query_sha256
    from rankvideo_cli.videos.config import SamplingConfig
    from rankvideo_cli.videos.identity import StatSignature, content_identity

    run = read_run(run_path)
    texts = dict(line.rstrip("\n").split("\t", 1) for line in (run_path.parent / "queries.tsv").open())
    settings = SamplingConfig().fingerprint()
    store.mkdir(parents=True)
    videos.mkdir(parents=True, exist_ok=True)
    per_query = max(1, pairs // len(run))
    identities: dict[str, str] = {}
    lines = ['{"kind":"model","model":"m0","fingerprint":{"model":"benchmark"}}\n']
    for qid, candidates in run.items():
        for candidate in candidates[:per_query]:
            video = str(videos / f"{candidate.docid}.mp4")
            if video not in identities:
                Path(video).touch()
                signature = StatSignature.of(video)
                identities[video] = content_identity(video)
                record = {"kind": "video_id", "video": video, "size": signature.size, "mtime_ns": signature.mtime_ns}
                record |= {"ctime_ns": signature.ctime_ns, "id": identities[video]}
                lines.append(json.dumps(record) + "\n")
            record = {"kind": "score", "model": "m0", "settings": settings, "qid": qid}
            record |= {"query_sha256": query_sha256(texts[qid]), "docid": candidate.docid, "video": video}
            record |= {"video_id": identities[video], "logit_delta": 0.5, "p_yes": 0.6, "logprob_yes": -0.5}
            record |= {"logprob_no": -1.0}
            lines.append(json.dumps(record, separators=(",", ":")) + "\n")
    (store / "scores.shard-0000-of-0001.jsonl").write_text("".join(lines))
    counts = PipelineCounts()
    result = PipelineResult({}, {}, {}, counts, PipelineTimings(), "m0", settings, store)
    settings_record = {
        "depth": per_query,
        "interpolate": None,
        "normalization": "minmax",
        "tag": "rankvideo",
        "on_missing_video": "keep",
        "on_bad_video": "keep",
        "missing_query": "error",
        "videos": {"root": str(videos), "pattern": "{docid}.mp4", "multivent": False, "video_map": None},
    }
    manifest = build_manifest(
        result=result,
        inputs={"run": run_path, "queries": run_path.parent / "queries.tsv"},
        settings=settings_record,
        scorer_fingerprint=None,
    )
    manifest["shard"] = "shard-0000-of-0001"
    write_manifest(store / "shard-0000-of-0001.manifest.json", manifest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=2500)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--store-pairs", type=int, default=250_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    rankvideo = [sys.executable, "-c", "from rankvideo_cli.cli import main; main()"]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as scratch_dir:
        scratch = Path(scratch_dir)
        inputs = write_inputs(scratch / "inputs", args.queries, args.depth, seed=0)
        run, queries = inputs["run.trec"], inputs["queries.tsv"]
        lines = sum(1 for _ in run.open())
        empty_videos = scratch / "no-videos"
        empty_videos.mkdir()
        store, store_videos = scratch / "store", scratch / "store-videos"
        write_store(store, run, store_videos, args.store_pairs)

        wall, rss, out = measure(
            [
                sys.executable,
                "-c",
                PHASES,
                str(run),
                str(queries),
                str(empty_videos),
                str(store),
                str(scratch / "phases.trec"),
            ]
        )
        results["phases"] = {"wall_s": wall, "peak_rss_mb": rss, **json.loads(out)}
        common = [str(run), str(queries), "--videos", str(empty_videos), "--model", "tiny-random"]
        wall, rss, _ = measure([*rankvideo, "rerank", *common, "-o", str(scratch / "rerank.trec")], cwd=scratch)
        results["rerank"] = {"wall_s": wall, "peak_rss_mb": rss}
        wall, rss, _ = measure([*rankvideo, "rerank", *common, "--dry-run"], cwd=scratch)
        results["dry_run"] = {"wall_s": wall, "peak_rss_mb": rss}
        merge = [*rankvideo, "merge", str(run), str(queries), "--cache", str(store), "-o", str(scratch / "m.trec")]
        wall, rss, _ = measure(merge, cwd=scratch)
        results["merge"] = {"wall_s": wall, "peak_rss_mb": rss}
        assert (scratch / "rerank.trec").read_bytes() == (scratch / "phases.trec").read_bytes()
        assert sum(1 for _ in (scratch / "m.trec").open()) == lines
    phases = results["phases"]
    print(
        f"run: {lines} lines ({args.queries} queries x {args.depth}), depth 100; store: {phases['store_pairs']} pairs"
    )
    print(
        f"phases (one process): import {phases['import_s']:.2f} s, read {phases['read_s']:.2f} s, "
        f"plan {phases['plan_s']:.2f} s, store read {phases['store_read_s']:.2f} s, "
        f"rank+write {phases['rank_write_s']:.2f} s; peak RSS {phases['peak_rss_mb']:.0f} MB"
    )
    for name in ("rerank", "dry_run", "merge"):
        print(f"{name:<8} wall {results[name]['wall_s']:6.2f} s   peak RSS {results[name]['peak_rss_mb']:6.0f} MB")
    if args.json:
        args.json.write_text(json.dumps({"lines": lines, "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
