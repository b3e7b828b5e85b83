"""score_pairs / merge_scores: video-major scheduling, resume from the store, bad and missing videos,
out-of-memory splitting, signals, shards, progress, and the result's advice when decoding kept the scorer waiting.
Real synthesized videos, a deterministic fake scorer.
"""

from __future__ import annotations

import io
import os
import signal
import time

import pytest
from pipeline_helpers import (
    CountingSampler,
    DirResolver,
    make_run,
    real_sampler,
)
from rich.console import Console
from video_factory import make_video

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.options import DecodeOptions, OptionError, RankingOptions
from rankvideo_cli.pipeline.merge import merge_scores
from rankvideo_cli.pipeline.plan import Pairs
from rankvideo_cli.pipeline.result import (
    BAD_VIDEO,
    CACHED,
    MISSING_VIDEO,
    OUTSIDE_SHARD,
    SCORED,
    UNSCORED,
    IncompleteScores,
    Interrupted,
    ScoringOutOfMemory,
)
from rankvideo_cli.pipeline.score import score_pairs
from rankvideo_cli.pipeline.shards import Shard
from rankvideo_cli.pipeline.store import ScoreStore, read_store
from rankvideo_cli.progress import LogProgress, RichProgress, make_progress
from rankvideo_cli.scoring.fake import FakeFailures, FakeScorer
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.container import VideoError

SAMPLING = SamplingConfig()
QUERIES = {"q1": "a red ball", "q2": "a blue square", "q3": "something moving right"}
RANKED = {
    "q1": ["v0", "v1", "v2", "v3", "nofile"],
    "q2": ["v1", "v2", "v4", "broken"],
    "q3": ["v2", "v0", "v5", "v6"],
}
VIDEO_SPECS = [
    {"pattern": "moving", "width": 64, "height": 48},
    {"pattern": "noise", "width": 64, "height": 48},
    {"pattern": "moving", "width": 96, "height": 64},
    {"pattern": "noise", "width": 96, "height": 64},
    {"pattern": "flat", "width": 64, "height": 48},
    {"pattern": "moving", "width": 48, "height": 64},
    {"pattern": "noise", "width": 48, "height": 64},
    {"pattern": "moving", "width": 80, "height": 48},
]


@pytest.fixture(scope="module")
def video_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for index, spec in enumerate(VIDEO_SPECS):
        make_video(root / f"v{index}.mp4", fps=10, seconds=1.0, **spec)
    (root / "broken.mp4").write_bytes(b"this is not a video file\n" * 40)
    return root


def run_pipeline(video_dir, store_dir, *, scorer=None, sampler=None, ranked=RANKED, queries=QUERIES, **options):
    scorer = scorer if scorer is not None else FakeScorer()
    sampler = sampler if sampler is not None else CountingSampler(real_sampler())
    depth = options.pop("depth", 100)
    progress = options.pop("progress", None)
    options.setdefault("decode_workers", 2)
    with ScoreStore(store_dir, options.pop("shard", None)) as store:
        result = score_pairs(
            Pairs(make_run(ranked), queries, DirResolver(video_dir), depth),
            scorer,
            store,
            decode=DecodeOptions(**options),
            sampling=SAMPLING,
            progress=progress,
            sampler=sampler,
        )
    return result, scorer, sampler


def reference_scores(video_dir, ranked=RANKED, queries=QUERIES) -> dict:
    """The slow way: every pair decoded and scored on its own."""
    sample = real_sampler()
    expected = {}
    for qid, docids in ranked.items():
        for docid in docids:
            path = video_dir / f"{docid}.mp4"
            if docid not in {"nofile", "broken"}:
                expected[(qid, docid)] = FakeScorer().pair_score(queries[qid], sample(path, SAMPLING))
    return expected


def store_lines(store_dir) -> list[str]:
    return [line for path in sorted(store_dir.glob("scores*.jsonl")) for line in path.read_text().splitlines()]


def test_each_video_is_decoded_once_and_scored_in_one_call(video_dir, tmp_path):
    result, scorer, sampler = run_pipeline(video_dir, tmp_path / "store")
    videos = {f"v{index}" for index in range(7)}
    assert sorted(sampler.decoded) == sorted(
        [str(video_dir / f"{v}.mp4") for v in videos] + [str(video_dir / "broken.mp4")]
    )
    assert set(sampler.decoded.values()) == {1}
    # one call per decodable video, in sorted video order, with that video's distinct queries
    assert [path for path, _queries in scorer.calls] == sorted(str(video_dir / f"{v}.mp4") for v in videos)
    queries_of = {path: queries for path, queries in scorer.calls}
    assert queries_of[str(video_dir / "v2.mp4")] == (QUERIES["q1"], QUERIES["q2"], QUERIES["q3"])
    assert queries_of[str(video_dir / "v4.mp4")] == (QUERIES["q2"],)
    assert result.scores == reference_scores(video_dir)
    assert result.model_scores() == {pair: score.logit_delta for pair, score in reference_scores(video_dir).items()}


def test_every_pair_gets_an_outcome_and_counts_add_up(video_dir, tmp_path):
    result, _scorer, _sampler = run_pipeline(video_dir, tmp_path / "store")
    assert list(result.outcomes) == [(qid, docid) for qid, docids in RANKED.items() for docid in docids]
    assert result.outcomes[("q1", "nofile")].status == MISSING_VIDEO
    assert result.outcomes[("q2", "broken")].status == BAD_VIDEO
    assert result.outcomes[("q2", "broken")].bad_kind == "not_a_video"
    assert result.pairs_with(MISSING_VIDEO, BAD_VIDEO) == {("q1", "nofile"), ("q2", "broken")}
    assert result.pairs_with(SCORED) == set(result.scores)
    counts = result.counts
    assert counts.pairs_in_run == 13
    assert (counts.pairs_scored, counts.pairs_cached, counts.pairs_missing_video, counts.pairs_bad_video) == (
        11,
        0,
        1,
        1,
    )
    assert (counts.videos_decoded, counts.bad_videos, counts.missing_videos) == (7, 1, 1)
    assert str(video_dir / "broken.mp4") in result.bad_videos


def test_depth_limits_the_candidates(video_dir, tmp_path):
    result, _scorer, sampler = run_pipeline(video_dir, tmp_path / "store", depth=2)
    assert set(result.outcomes) == {(qid, docid) for qid, docids in RANKED.items() for docid in docids[:2]}
    assert len(sampler.decoded) == 3  # v0, v1, v2


def test_a_second_run_scores_nothing_and_returns_the_same_scores(video_dir, tmp_path):
    first, _scorer, _sampler = run_pipeline(video_dir, tmp_path / "store")
    lines = store_lines(tmp_path / "store")
    second, scorer, sampler = run_pipeline(video_dir, tmp_path / "store")
    assert scorer.calls == []
    assert sum(sampler.decoded.values()) == 0  # the bad video is remembered, not retried
    assert second.scores == first.scores
    assert list(second.scores) == list(first.scores)
    assert second.pairs_with(CACHED) == first.pairs_with(SCORED)
    assert second.outcomes[("q2", "broken")].status == BAD_VIDEO
    assert (second.counts.pairs_cached, second.counts.videos_cached, second.counts.videos_known_bad) == (
        11,
        7,
        1,
    )
    assert store_lines(tmp_path / "store") == lines


def test_only_new_or_changed_pairs_are_scored(video_dir, tmp_path):
    run_pipeline(video_dir, tmp_path / "store")
    ranked = {**RANKED, "q4": ["v0", "v7"]}
    queries = {**QUERIES, "q1": "a red ball, edited", "q4": "a new query"}
    result, scorer, _sampler = run_pipeline(video_dir, tmp_path / "store", ranked=ranked, queries=queries)
    assert sorted(result.pairs_with(SCORED)) == sorted(
        [("q1", docid) for docid in ("v0", "v1", "v2", "v3")] + [("q4", "v0"), ("q4", "v7")]
    )
    queries_of = {os.path.basename(path): queries for path, queries in scorer.calls}
    # v0 is scored with every query the run has for it (q3's is stored and not written again), so its new pairs
    # are scored in the batch a run over an empty store gives them (a score depends on its batch, slightly)
    assert queries_of["v0.mp4"] == ("a red ball, edited", "something moving right", "a new query")
    assert result.scores == reference_scores(video_dir, ranked, queries)


def test_another_model_fingerprint_scores_everything_again(video_dir, tmp_path):
    run_pipeline(video_dir, tmp_path / "store")
    result, scorer, _sampler = run_pipeline(video_dir, tmp_path / "store", scorer=FakeScorer(name="other"))
    assert scorer.pairs_scored == 11
    assert result.counts.pairs_cached == 0


def test_bad_videos_are_retried_on_request_and_cleared_once_they_work(video_dir, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("v0.mp4", "broken.mp4"):
        (videos / name).write_bytes((video_dir / name).read_bytes())
    ranked = {"q1": ["v0", "broken"]}
    run_pipeline(videos, tmp_path / "store", ranked=ranked)
    _result, _scorer, sampler = run_pipeline(videos, tmp_path / "store", ranked=ranked, retry_bad_videos=True)
    assert sampler.decoded == {str(videos / "broken.mp4"): 1}
    (videos / "broken.mp4").write_bytes((video_dir / "v3.mp4").read_bytes())  # repaired
    fixed, _scorer, _sampler = run_pipeline(videos, tmp_path / "store", ranked=ranked, retry_bad_videos=True)
    assert fixed.outcomes[("q1", "broken")].status == SCORED
    assert fixed.bad_videos == {}
    later, scorer, _sampler = run_pipeline(videos, tmp_path / "store", ranked=ranked)
    assert later.outcomes[("q1", "broken")].status == CACHED
    assert scorer.calls == []


def test_unexpected_decode_failures_are_bad_for_this_run_only(video_dir, tmp_path):
    sample = real_sampler()

    def flaky(path, config):
        if path.name == "v3.mp4":
            raise OSError("Stale file handle")
        return sample(path, config)

    first, _scorer, _sampler = run_pipeline(video_dir, tmp_path / "store", sampler=flaky)
    assert first.outcomes[("q1", "v3")].status == BAD_VIDEO
    assert first.bad_videos[str(video_dir / "v3.mp4")].kind == "unexpected"
    assert "Stale file handle" in first.bad_videos[str(video_dir / "v3.mp4")].message
    second, _scorer, _sampler = run_pipeline(video_dir, tmp_path / "store")
    assert second.outcomes[("q1", "v3")].status == SCORED


def test_typed_decode_failures_keep_their_kind(video_dir, tmp_path):
    def failing(path, config):
        raise VideoError(path, "not_a_video", "audio only")

    result, _scorer, _sampler = run_pipeline(video_dir, tmp_path / "store", sampler=failing, ranked={"q1": ["v0"]})
    assert result.outcomes[("q1", "v0")].bad_kind == "not_a_video"
    contents = read_store(tmp_path / "store", result.model_fingerprint, result.settings_fingerprint)
    assert contents.bad_videos[str(video_dir / "v0.mp4")].kind == "not_a_video"


def test_out_of_memory_splits_the_queries_and_loses_no_pair(video_dir, tmp_path):
    result, scorer, _sampler = run_pipeline(video_dir, tmp_path / "store", scorer=FakeScorer(FakeFailures(oom_above=1)))
    assert result.scores == reference_scores(video_dir)
    assert result.counts.oom_splits == 4  # v2 serves 3 queries: 3 -> 1 + 2 -> 1 + 1 + 1; v0, v1: 2 -> 1 + 1
    assert all(len(queries) == 1 for _path, queries in scorer.calls)


def test_out_of_memory_on_a_single_pair_is_a_one_line_error(video_dir, tmp_path):
    with pytest.raises(ScoringOutOfMemory, match="out of memory scoring one query") as caught:
        run_pipeline(video_dir, tmp_path / "store", scorer=FakeScorer(FakeFailures(oom_above=0)))
    assert isinstance(caught.value, RankVideoError)
    assert "\n" not in str(caught.value)


class SignallingScorer(FakeScorer):
    """Sends itself a signal while scoring its `at_call`-th video, like SLURM before a preemption."""

    def __init__(self, signum: int, at_call: int) -> None:
        super().__init__()
        self.signum = signum
        self.at_call = at_call

    def score_video(self, queries, video):
        if len(self.calls) + 1 == self.at_call:
            os.kill(os.getpid(), self.signum)
        return super().score_video(queries, video)


@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_current_video_flushes_and_raises_interrupted(video_dir, tmp_path, signum, exit_code):
    handler_before = signal.getsignal(signum)
    scorer = SignallingScorer(signum, at_call=3)
    with pytest.raises(Interrupted) as caught:
        run_pipeline(video_dir, tmp_path / "store", scorer=scorer)
    assert caught.value.exit_code == exit_code
    message = str(caught.value)
    assert "\n" not in message
    assert signal.Signals(signum).name in message
    assert "run the same command again to resume" in message
    assert signal.getsignal(signum) is handler_before
    # broken.mp4 sorts first (bad, no call), then v0 (2 pairs), v1 (2) and v2 (3): v2 was finished, no more
    assert [os.path.basename(path) for path, _queries in scorer.calls] == ["v0.mp4", "v1.mp4", "v2.mp4"]
    # model and bad-video records, every scored pair, and the content identity of each of the 4 videos opened
    assert len(store_lines(tmp_path / "store")) == 2 + 7 + 4
    resumed, scorer, _sampler = run_pipeline(video_dir, tmp_path / "store")
    assert resumed.scores == reference_scores(video_dir)
    assert (resumed.counts.pairs_cached, resumed.counts.pairs_scored) == (7, 4)
    assert len(store_lines(tmp_path / "store")) == 2 + 11 + 8  # and the identities of the 4 videos of the resume


def test_a_signal_while_waiting_for_a_slow_decode_stops_without_waiting_for_it(video_dir, tmp_path):
    """A signal that comes while the model waits for a decode (a slow disk) ends the run within a poll, not
    after the decode: what was scored is stored, the rest is for the resume."""
    sample = real_sampler()
    decodes: list[str] = []

    def slow_second_decode(path, config):
        decodes.append(str(path))
        if len(decodes) == 2:  # SLURM's warning comes while the second video is read
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5.0)
        return sample(path, config)

    with pytest.raises(Interrupted) as caught:
        run_pipeline(video_dir, tmp_path / "store", sampler=slow_second_decode, decode_workers=1, prefetch=1)
    assert caught.value.exit_code == 143
    assert len(decodes) == 2  # no decode began after the signal


def test_work_order_is_sorted_and_prefetch_bounds_decoding_ahead(video_dir, tmp_path):
    sampler = CountingSampler(real_sampler())
    started_at_call = []

    class Watching(FakeScorer):
        def score_video(self, queries, video):
            started_at_call.append(len(sampler.order))
            return super().score_video(queries, video)

    run_pipeline(video_dir, tmp_path / "store", scorer=Watching(), sampler=sampler, decode_workers=1, prefetch=2)
    assert sampler.order == sorted(sampler.order)
    for call, started in enumerate(started_at_call, start=1):
        assert started <= call + 2 + 1  # + 1: the bad video is decoded but never scored


def test_decoding_runs_in_parallel_threads(video_dir, tmp_path):
    sampler = CountingSampler(real_sampler(), delay_s=0.1)
    run_pipeline(video_dir, tmp_path / "store", sampler=sampler, decode_workers=3, prefetch=6)
    assert sampler.max_running == 3


@pytest.mark.parametrize(
    ("kind", "field"), [(DecodeOptions, "decode_workers"), (DecodeOptions, "prefetch"), (RankingOptions, "depth")]
)
def test_bad_options_are_refused_when_made_naming_the_field(kind, field):
    with pytest.raises(OptionError, match=f"^{field} must be at least 1, got 0$") as refused:
        kind(**{field: 0})
    assert isinstance(refused.value, RankVideoError) and isinstance(refused.value, ValueError)
    assert refused.value.flag() == f"--{field.replace('_', '-')} must be at least 1, got 0"


def test_a_query_without_text_is_an_error(video_dir, tmp_path):
    with pytest.raises(RankVideoError, match="1 run queries have no text"):
        run_pipeline(video_dir, tmp_path / "store", queries={"q1": "a", "q2": "b"})


def test_shards_split_by_video_and_merge_to_the_single_process_result(video_dir, tmp_path):
    single, _scorer, _sampler = run_pipeline(video_dir, tmp_path / "single")
    decoded = []
    owned = []
    for index in range(3):
        part, _scorer, sampler = run_pipeline(video_dir, tmp_path / "sharded", shard=Shard(index, 3))
        decoded.extend(sampler.decoded)
        owned.extend(pair for pair, outcome in part.outcomes.items() if outcome.status != OUTSIDE_SHARD)
    assert sorted(decoded) == sorted(set(decoded))  # no video decoded by two shards
    assert len(decoded) == 8
    assert sorted(owned) == sorted(single.outcomes)  # every pair in exactly one shard
    with ScoreStore(tmp_path / "sharded") as store:
        merged = merge_scores(Pairs(make_run(RANKED), QUERIES, DirResolver(video_dir), 100), store)
    assert merged.scores == single.scores
    assert list(merged.scores) == list(single.scores)
    assert {pair: outcome.status for pair, outcome in merged.outcomes.items()} == {
        pair: CACHED if outcome.status == SCORED else outcome.status for pair, outcome in single.outcomes.items()
    }


def test_merge_names_the_unscored_pairs_and_their_shards(video_dir, tmp_path):
    for index in range(3):
        run_pipeline(video_dir, tmp_path / "sharded", shard=Shard(index, 3))
    # The videos' keys are paths under pytest's tmp folder, so which shard owns what changes between
    # machines, and a shard that owns no video writes no file at all.
    shard_files = [tmp_path / "sharded" / f"scores.shard-{index:04d}-of-0003.jsonl" for index in range(3)]
    lost = next(
        (index, path)
        for index, path in enumerate(shard_files)
        if path.exists() and '"kind":"score"' in path.read_text()
    )
    lost[1].unlink()  # as if that array task never ran
    store = ScoreStore(tmp_path / "sharded")
    with pytest.raises(IncompleteScores) as caught:
        merge_scores(Pairs(make_run(RANKED), QUERIES, DirResolver(video_dir), 100), store)
    message = str(caught.value)
    assert "\n" not in message
    assert f"they belong to shards {lost[0]} of 3: re-run them with the same arguments" in message
    assert f"(RANKVIDEO_SHARDS=3 sbatch --array={lost[0]} rerank-array.sbatch ..." in message
    assert "--allow-missing" in message
    partial = merge_scores(Pairs(make_run(RANKED), QUERIES, DirResolver(video_dir), 100), store, allow_missing=True)
    unscored = partial.pairs_with(UNSCORED)
    assert unscored
    assert caught.value.result.pairs_with(UNSCORED) == unscored
    assert partial.counts.pairs_unscored == len(unscored)
    assert not unscored & set(partial.scores)
    assert all(Shard(lost[0], 3).owns(partial.outcomes[pair].video) for pair in unscored)


def test_merge_of_an_empty_store_says_so(video_dir, tmp_path):
    with pytest.raises(IncompleteScores, match="holds no scores"):
        merge_scores(Pairs(make_run(RANKED), QUERIES, DirResolver(video_dir), 100), ScoreStore(tmp_path))


def test_log_progress_prints_plain_status_lines(video_dir, tmp_path):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=300)
    progress = make_progress(console, interval_s=0.0)
    assert isinstance(progress, LogProgress)
    run_pipeline(video_dir, tmp_path / "store", progress=progress)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "rankvideo: 12 pairs: 0 already in the score store, 12 to score over 8 videos"
    assert any(line.startswith("rankvideo: bad video (") for line in lines)
    assert lines[-1].startswith("rankvideo: 11/12 pairs scored (100.0%), ")
    assert "7/8 videos decoded, 0 cached, 1 bad video, 1 missing video" in lines[-1]
    assert "\x1b" not in buffer.getvalue()


def test_rich_progress_on_a_terminal(video_dir, tmp_path):
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=200)
    progress = make_progress(console)
    assert isinstance(progress, RichProgress)
    run_pipeline(video_dir, tmp_path / "store", progress=progress)
    output = buffer.getvalue()
    assert "scoring" in output
    assert "videos 7/8 | cached 0 | bad 1 | missing 1" in output


def test_the_tiny_model_through_the_pipeline_equals_scoring_pair_by_pair(tiny_loaded, video_dir, tmp_path):
    """The real scorer: one vision pass per video and all its queries, same scores as one pair at a time
    (batch size 1 makes them bit-identical; larger batches differ in the last float32 bits, from padding)."""
    from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer

    scorer = Qwen3VLScorer.from_loaded(tiny_loaded, batch_size=1)
    ranked = {"q1": ["v0", "v1"], "q2": ["v1"], "q3": ["v0", "v1"]}
    result, _scorer, sampler = run_pipeline(video_dir, tmp_path / "store", scorer=scorer, ranked=ranked)
    assert set(sampler.decoded.values()) == {1}
    sample = real_sampler()
    for (qid, docid), score in result.scores.items():
        video = sample(video_dir / f"{docid}.mp4", SAMPLING)
        assert scorer.score_video([QUERIES[qid]], video) == [score], (qid, docid)
    assert len(result.scores) == 5


def test_the_wait_for_decoding_is_reported_with_its_fix_only_when_large():
    from pathlib import Path

    from rankvideo_cli.pipeline.result import (
        PipelineCounts,
        PipelineResult,
        PipelineTimings,
        decode_wait_advice,
        decode_wait_share,
    )

    def result(wait_s: float, score_s: float, decoded: int = 10) -> PipelineResult:
        return PipelineResult(
            scores={},
            outcomes={},
            bad_videos={},
            counts=PipelineCounts(videos_decoded=decoded),
            timings=PipelineTimings(wall_s=wait_s + score_s, wait_s=wait_s, score_s=score_s),
            model_fingerprint="m",
            settings_fingerprint="s",
            store_dir=Path("store"),
            settings={"decode_workers": 3},
        )

    assert decode_wait_share(result(30.0, 70.0).timings) == 0.3
    advice = decode_wait_advice(result(30.0, 70.0))
    assert advice is not None and "waited 30.0 s for decoded videos, 30% of its time, with 3 decode threads" in advice
    assert "--cpus-per-task" in advice and "--decode-workers" in advice and "rankvideo sample" in advice
    assert decode_wait_advice(result(10.0, 90.0)) is None  # 10%: the GPU was fed
    assert decode_wait_advice(result(30.0, 70.0, decoded=1)) is None  # one video: its decode is the start-up
    assert decode_wait_share(PipelineTimings()) == 0.0
