"""VLMReranker (the model card's API) and the rows behind `rankvideo score`, on real decoded video files; the
model card's `from rankvideo import VLMReranker` works, is this package's class and imports no torch, and the
card's snippet runs as written. Its `rank()` orders videos as `rankvideo rerank` orders a run (score descending,
ties by doc id descending) and says which videos it could not score; its keywords are `ScorerOptions`' fields."""

from __future__ import annotations

import dataclasses
import doctest
import inspect
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FAKE, SAMPLE, TINY, VIDEOS
from video_factory import make_video

from rankvideo_cli.errors import UsageError
from rankvideo_cli.evaluation.ranking import rerank_query
from rankvideo_cli.io.queries import read_queries
from rankvideo_cli.io.runs import Candidate, read_run
from rankvideo_cli.options import OptionError
from rankvideo_cli.scoring import reranker as reranker_module
from rankvideo_cli.scoring.base import PairScore
from rankvideo_cli.scoring.deferred import DeferredScorer
from rankvideo_cli.scoring.options import DEFAULT_MODEL, ScorerOptions
from rankvideo_cli.scoring.reranker import (
    RankedResults,
    RankedVideo,
    UnscoredVideo,
    UnscoredVideoWarning,
    VLMReranker,
)
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.frames import sample_video

CARD_KEYS = {"logit_delta_yes_minus_no", "logit_delta", "p_yes", "logprob_yes", "logprob_no"}


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clips")
    first = make_video(folder / "first.mp4", width=128, height=96, seconds=2.0, pattern="moving")
    second = make_video(folder / "second.mp4", width=96, height=128, seconds=3.0, fps=30)
    return first, second


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, SamplingConfig]]:
    """Every `sample_video` call the reranker makes: (path, config)."""
    calls: list[tuple[str, SamplingConfig]] = []

    def counting(path, config):
        calls.append((str(path), config))
        return sample_video(path, config)

    monkeypatch.setattr(reranker_module, "sample_video", counting)
    return calls


def test_score_batch_decodes_each_video_once(tiny_scorer, clips, decodes) -> None:
    first, second = clips
    queries = ["a dog", "a red ball moving left", "fire", "a dog"]
    paths = [first, second, first, str(second)]
    scores = VLMReranker.from_scorer(tiny_scorer).score_batch(queries=queries, video_paths=paths)
    assert [path for path, _ in decodes] == [str(first), str(second)]
    assert all(set(score) == CARD_KEYS for score in scores)
    direct_first = tiny_scorer.score_video(["a dog", "fire"], sample_video(first))
    direct_second = tiny_scorer.score_video(["a red ball moving left", "a dog"], sample_video(second))
    expected = [direct_first[0], direct_second[0], direct_first[1], direct_second[1]]
    assert scores == [score.to_dict() for score in expected]
    assert scores[0]["logit_delta_yes_minus_no"] == scores[0]["logit_delta"]


def test_score_batch_passes_the_sampling_settings(tiny_scorer, clips, decodes) -> None:
    VLMReranker.from_scorer(tiny_scorer).score_batch(["q"], [clips[0]], fps=1.0, max_frames=16)
    ((_, config),) = decodes
    assert (config.fps, config.max_frames) == (1.0, 16)


def test_score_batch_needs_pairs(tiny_scorer, clips) -> None:
    with pytest.raises(UsageError, match="2 queries but 1 video paths"):
        VLMReranker.from_scorer(tiny_scorer).score_batch(["a", "b"], [clips[0]])


def test_model_card_usage(tiny_model_dir: Path, clips) -> None:
    from rankvideo_cli import VLMReranker as TopLevel

    reranker = TopLevel(model_path="tiny-random", device="cpu", batch_size=2)
    assert reranker.scorer.fingerprint()["model"] == "tiny-random"
    (score,) = reranker.score_batch(queries=["a dog surfing"], video_paths=[str(clips[0])])
    assert set(score) == CARD_KEYS
    assert 0.0 < score["p_yes"] < 1.0


def test_score_rows_for_the_cli(tiny_scorer, clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rankvideo_cli.jobs.score import score_videos
    from rankvideo_cli.scoring import reranker

    decoded: list[str] = []
    real = reranker.sample_video  # the CLI's rows come from VLMReranker's score_each_video
    monkeypatch.setattr(reranker, "sample_video", lambda path, config: decoded.append(str(path)) or real(path, config))
    first, _ = clips
    missing = tmp_path / "missing.mp4"
    rows = score_videos(tiny_scorer, "a dog", [first, missing, first], SamplingConfig())
    assert [row["video"] for row in rows] == [str(first), str(missing), str(first)]
    assert rows[0] == rows[2]
    assert decoded == [str(first), str(missing)]  # a repeated path is decoded once
    good, bad = rows[0], rows[1]
    (expected,) = tiny_scorer.score_video(["a dog"], sample_video(first))
    assert good == {"video": str(first), **expected.to_dict()} and "error" not in good
    assert bad["error_kind"] == "missing" and "missing" in bad["error"] and "\n" not in bad["error"]
    assert "logit_delta" not in bad


def test_rankvideo_import_is_the_same_lazy_class() -> None:
    probe = (
        "import sys, rankvideo; assert 'torch' not in sys.modules; "
        "from rankvideo import VLMReranker, RankedResults, RankedVideo, UnscoredVideo; import rankvideo_cli; "
        "assert VLMReranker is rankvideo_cli.VLMReranker and RankedResults is rankvideo_cli.RankedResults; "
        "assert RankedVideo.__module__ == UnscoredVideo.__module__ == 'rankvideo_cli.scoring.reranker'; "
        "print(VLMReranker.__name__, rankvideo.__version__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == "VLMReranker"


def test_the_model_card_snippet_runs_as_written(tiny_model_dir, tmp_path) -> None:
    """The docs' copy (docs/python-api.md) of the model card's snippet, run unchanged but for its video path, in a fresh
    interpreter; `hltcoe/RankVideo` resolves offline from a Hugging Face cache holding the tiny model's files
    under that id (the real weights cannot be fetched here), so the loading path is the hub id's own."""
    root = Path(__file__).resolve().parent.parent
    page = (root / "docs" / "python-api.md").read_text()
    snippet = re.search(r"The model card's snippet works.*?```python\n(.*?)```", page, re.S).group(1)
    video = root / "sample_runs" / "videos" / "v001.mp4"
    assert snippet.count('"/path/to/video.mp4"') == 1
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--hltcoe--RankVideo"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    environment = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", snippet.replace('"/path/to/video.mp4"', repr(str(video)))],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    from rankvideo_cli.scoring.reranker import VLMReranker

    expected = VLMReranker("tiny-random").score_batch(queries=["person playing guitar"], video_paths=[str(video)])
    assert done.stdout == f"Relevance score: {expected[0]['logit_delta_yes_minus_no']:.3f}\n"


def test_vlm_reranker_takes_the_prompt(tiny_model_dir: Path) -> None:
    from rankvideo_cli import VLMReranker

    video = str(SAMPLE / "videos" / "v001.mp4")
    reranker = VLMReranker(model_path=TINY, device="cpu", prompt="training")
    (row,) = reranker.score_batch(queries=["a red ball"], video_paths=[video])
    assert set(row) == {"logit_delta_yes_minus_no", "logit_delta", "p_yes", "logprob_yes", "logprob_no"}
    assert reranker.scorer.fingerprint()["prompt_format"] == "training"
    full = VLMReranker(model_path=TINY, device="cpu", prompt="training", prefix_cache=False)
    (same,) = full.score_batch(queries=["a red ball"], video_paths=[video])
    assert same["logit_delta"] == pytest.approx(row["logit_delta"], abs=1e-5)


class ScoresByPath:
    """A `Scorer` whose score of a video is looked up by its path: the ranking rules, without a model."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores

    def score_video(self, queries, video):
        return [PairScore.from_logprobs(self.scores[video.path], 0.0) for _ in queries]

    def fingerprint(self) -> dict[str, str]:
        return {"model": "scores-by-path"}


@pytest.fixture
def undecoded(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`sample_video` hands the scorer the path alone (no decoding); the paths it was asked for, in order."""
    asked: list[str] = []

    def path_only(path, config):
        asked.append(str(path))
        return type("PathOnly", (), {"path": str(path)})()

    monkeypatch.setattr(reranker_module, "sample_video", path_only)
    return asked


def test_rank_orders_by_score_then_doc_id_descending_as_the_rerank_does(undecoded) -> None:
    scores = {"a": 1.0, "b": 2.0, "c": 1.0, "d": 2.0, "e": -0.5}
    results = VLMReranker.from_scorer(ScoresByPath(scores)).rank("q", ["c", "a", "e", "d", "b"])
    assert [(video.doc_id, video.score, video.rank) for video in results] == [
        ("d", 2.0, 1),
        ("b", 2.0, 2),
        ("c", 1.0, 3),
        ("a", 1.0, 4),
        ("e", -0.5, 5),
    ]
    # the same order as the project's ranking of a run with these model scores, whatever the first stage said
    candidates = first_stage(["e", "a", "b", "c", "d"])
    ranked = rerank_query("q", candidates, {("q", docid): score for docid, score in scores.items()})
    assert [doc.docid for doc in ranked] == results.doc_ids()


def first_stage(docids: list[str]) -> list[Candidate]:
    """A query's candidates in this first-stage order."""
    return [Candidate(docid, float(-position), position + 1) for position, docid in enumerate(docids)]


def test_rank_keeps_the_top_k_and_names_videos_by_doc_id(undecoded) -> None:
    scorer = ScoresByPath({"clips/1.mp4": 0.5, "clips/2.mp4": 3.0, "clips/3.mp4": -1.0})
    results = VLMReranker.from_scorer(scorer).rank(
        "a dog", ["clips/1.mp4", "clips/2.mp4", "clips/3.mp4"], top_k=2, doc_ids=["one", "two", "three"]
    )
    assert isinstance(results, RankedResults) and results.query == "a dog"
    assert len(results) == 2 and results.unscored == ()
    best = results[0]
    assert isinstance(best, RankedVideo)
    assert (best.rank, best.doc_id, best.video_path, best.score) == (1, "two", "clips/2.mp4", 3.0)
    assert best.p_yes == pytest.approx(1 / (1 + 2.718281828459045**-3.0))
    assert (best.logprob_yes, best.logprob_no) == (3.0, 0.0)
    assert [video.doc_id for video in results] == ["two", "one"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        best.score = 0.0  # type: ignore[misc]
    assert repr(best) == "RankedVideo(rank=1, doc_id='two', video_path='clips/2.mp4', score=3.0000, p_yes=0.9526)"
    assert repr(results) == (
        "RankedResults(query='a dog', results=[\n"
        "    RankedVideo(rank=1, doc_id='two', video_path='clips/2.mp4', score=3.0000, p_yes=0.9526),\n"
        "    RankedVideo(rank=2, doc_id='one', video_path='clips/1.mp4', score=0.5000, p_yes=0.6225),\n"
        "], unscored=[])"
    )


def test_rank_gives_the_scores_and_order_of_rankvideo_rerank(reranked) -> None:
    """The fake scorer's ranking of q1's candidates is the head of `rankvideo rerank`'s run of q1, score for score;
    the candidate without a video file is reported, as the run keeps it below the scored ones."""
    candidates = read_run(reranked.output)["q1"]
    docids = [candidate.docid for candidate in candidates]
    reranker = VLMReranker(model=FAKE)
    with pytest.warns(UnscoredVideoWarning, match="1 of 10 videos could not be scored"):
        results = reranker.rank(
            read_queries(SAMPLE / "queries.tsv")["q1"], [VIDEOS / f"{docid}.mp4" for docid in docids], doc_ids=docids
        )
    assert [(video.doc_id, video.score) for video in results] == [(c.docid, c.score) for c in candidates[:9]]
    assert [(video.doc_id, video.kind) for video in results.unscored] == [("v404", "missing")]
    assert candidates[9].docid == "v404"


def test_rank_reports_each_video_it_cannot_score_and_ranks_the_rest(clips, tmp_path: Path) -> None:
    first, second = clips
    not_a_video = tmp_path / "notes.mp4"
    not_a_video.write_bytes(b"these are notes, not a video")
    missing = tmp_path / "missing.mp4"
    with pytest.warns(UnscoredVideoWarning) as warned:
        results = VLMReranker(model=FAKE).rank("a dog", [first, not_a_video, second, missing])
    assert sorted(results.doc_ids()) == sorted([str(first), str(second)])
    assert [(video.doc_id, video.kind) for video in results.unscored] == [
        (str(not_a_video), "not_a_video"),
        (str(missing), "missing"),
    ]
    assert all(video.reason.startswith(f"{video.video_path}: {video.kind}: ") for video in results.unscored)
    (warning,) = warned
    assert str(warning.message).startswith("2 of 4 videos could not be scored and are not ranked")
    assert warning.filename == __file__  # it points at the caller of rank()
    assert f"UnscoredVideo(doc_id={str(missing)!r}, kind='missing'" in repr(results)


def test_rank_refuses_bad_arguments_before_decoding(undecoded) -> None:
    reranker = VLMReranker.from_scorer(ScoresByPath({"a": 1.0, "b": 2.0}))
    with pytest.raises(UsageError, match="video path 'a' is given twice"):
        reranker.rank("q", ["a", "b", "a"])
    with pytest.raises(UsageError, match="doc id 'x' is given twice"):
        reranker.rank("q", ["a", "b"], doc_ids=["x", "x"])
    with pytest.raises(UsageError, match="1 doc ids but 2 video paths"):
        reranker.rank("q", ["a", "b"], doc_ids=["x"])
    with pytest.raises(OptionError, match="top_k must be at least 1, got 0"):
        reranker.rank("q", ["a", "b"], top_k=0)
    with pytest.raises(UsageError, match="the query is empty"):
        reranker.rank("  ", ["a"])
    assert undecoded == []
    assert reranker.rank("q", []).results == ()


@pytest.mark.parametrize("one_path", ["videos/v001.mp4", b"videos/v001.mp4", Path("videos/v001.mp4")])
def test_rank_refuses_one_path_where_it_takes_a_list(one_path, undecoded) -> None:
    """One video is refused with the call to write instead: a str is a sequence too, and taken for the list its
    letters would be the paths ("video path 'v' is given twice")."""
    reranker = VLMReranker.from_scorer(ScoresByPath({"videos/v001.mp4": 1.0}))
    kind = "Path" if isinstance(one_path, Path) else type(one_path).__name__
    with pytest.raises(
        TypeError, match=rf"^video_paths must be a list of paths, not a {kind}: rank\(query, \[path\]\)$"
    ):
        reranker.rank("q", one_path)
    with pytest.raises(TypeError, match=r"^doc_ids must be a list of names, not a str"):
        reranker.rank("q", ["videos/v001.mp4"], doc_ids="v001")
    assert undecoded == []


@pytest.mark.parametrize("top_k", [1.5, 2.0, True, False, "2"])
def test_rank_refuses_a_top_k_that_is_not_a_whole_number(top_k, undecoded) -> None:
    """As a top_k below 1 is refused: an OptionError naming it, not slicing's bare TypeError (or True taken as 1)."""
    reranker = VLMReranker.from_scorer(ScoresByPath({"a": 1.0, "b": 2.0}))
    with pytest.raises(
        OptionError, match=rf"^top_k must be a whole number \(None: all\), got {re.escape(repr(top_k))}$"
    ):
        reranker.rank("q", ["a", "b"], top_k=top_k)
    assert undecoded == []


def test_rank_takes_any_integer_as_top_k(undecoded) -> None:
    """numpy's integers slice as ints do."""
    numpy = pytest.importorskip("numpy")
    reranker = VLMReranker.from_scorer(ScoresByPath({"a": 1.0, "b": 2.0}))
    assert reranker.rank("q", ["a", "b"], top_k=numpy.int64(1)).doc_ids() == ["b"]


def test_rank_leaves_a_non_finite_score_out_and_says_so(undecoded) -> None:
    reranker = VLMReranker.from_scorer(ScoresByPath({"a": 1.0, "b": float("nan")}))
    with pytest.warns(UnscoredVideoWarning, match="1 of 2 videos"):
        results = reranker.rank("q", ["a", "b"])
    assert results.doc_ids() == ["a"]
    assert results.unscored == (UnscoredVideo("b", "b", "non_finite_score", "b: the model's score is nan"),)


def test_the_keywords_are_the_scorer_options_fields() -> None:
    """Every model option is a keyword of its own, spelled as `ScorerOptions` spells it (the PyTerrier reranker's
    are checked in tests/test_pyterrier.py); nothing hides behind **options."""
    fields = {field.name for field in dataclasses.fields(ScorerOptions)}
    parameters = inspect.signature(VLMReranker).parameters
    assert fields <= set(parameters)
    assert {"model_path", "fps", "max_frames"} <= set(parameters)
    assert all(parameter.kind is not parameter.VAR_KEYWORD for parameter in parameters.values())
    assert [name for name, p in parameters.items() if p.kind is not p.KEYWORD_ONLY] == ["model_path"]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[ScorerOptions]:
    """The options each VLMReranker loads its scorer with (a fake scorer is loaded instead)."""
    from rankvideo_cli.scoring.fake import FakeScorer

    asked: list[ScorerOptions] = []
    monkeypatch.setattr(reranker_module, "load_scorer", lambda options: asked.append(options) or FakeScorer())
    return asked


def test_model_is_the_model_cards_model_path(loads) -> None:
    VLMReranker(model_path=FAKE)
    VLMReranker(model=FAKE)
    VLMReranker(FAKE, model=FAKE)  # the same model under both names
    VLMReranker()
    assert [options.model for options in loads] == [FAKE, FAKE, FAKE, DEFAULT_MODEL]
    with pytest.raises(UsageError, match="model='tiny-random' and model_path='fake-scorer' name two models"):
        VLMReranker(model_path=FAKE, model=TINY)
    assert len(loads) == 4  # refused before loading


def test_the_options_are_checked_before_the_model_loads(loads) -> None:
    with pytest.raises(OptionError, match="batch_size must be at least 1"):
        VLMReranker(FAKE, batch_size=0)
    with pytest.raises(OptionError, match="fps must be a positive number"):
        VLMReranker(FAKE, fps=0.0)
    with pytest.raises(OptionError, match="max_frames must be at least 2"):
        VLMReranker(FAKE, max_frames=1)
    with pytest.raises(UsageError, match="did you mean 'tiny-random'"):
        VLMReranker(model="tiny_random")
    assert loads == []
    chosen = VLMReranker(FAKE, cache_dir=Path("/hub"), reranker="qwen3-vl-reranker", instruction="Find it.")
    (options,) = loads
    assert (options.cache_dir, options.reranker, options.instruction) == ("/hub", "qwen3-vl-reranker", "Find it.")
    assert chosen.sampling == options.sampling()  # the reranker's own frames


def test_fps_and_max_frames_set_the_frames_of_every_call(clips, decodes) -> None:
    reranker = VLMReranker(FAKE, fps=1.0, max_frames=16)
    reranker.rank("a dog", [clips[0]])
    reranker.score_batch(["a dog"], [clips[0]])
    reranker.score_batch(["a dog"], [clips[0]], fps=0.5)  # a call's own setting wins
    assert [(config.fps, config.max_frames) for _, config in decodes] == [(1.0, 16), (1.0, 16), (0.5, 16)]


def test_repr_says_model_reranker_device_and_dtype_without_loading(tiny_scorer, tiny_model_dir) -> None:
    assert (
        repr(VLMReranker(FAKE, device="cpu")) == "VLMReranker(model='fake-scorer', reranker='rankvideo', device='cpu')"
    )
    assert repr(VLMReranker.from_scorer(tiny_scorer)) == (
        "VLMReranker(model='tiny-random', reranker='rankvideo', device='cpu', dtype='float32')"
    )
    deferred = DeferredScorer(ScorerOptions(model=TINY, device="cpu", reranker="qwen3-vl-reranker"))
    assert repr(VLMReranker.from_scorer(deferred)) == (
        "VLMReranker(model='tiny-random', reranker='qwen3-vl-reranker', device='cpu')"
    )
    assert not deferred.loaded


def test_the_docs_rank_session_runs_as_shown(tiny_model_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/python-api.md's `rank` session, run as a doctest in sample_runs/ with the tiny model: every shown
    output (the reranker's repr, the ranking, the unscored video) is what the code prints."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "python-api.md").read_text()
    session = re.search(r"### Ranking videos for a query.*?```pycon\n(.*?)```", page, re.S).group(1)
    monkeypatch.chdir(SAMPLE)
    test = doctest.DocTestParser().get_doctest(session, {}, "python-api.md", "docs/python-api.md", 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    with pytest.warns(UnscoredVideoWarning, match="1 of 4 videos"):
        runner.run(test, out=lambda report: pytest.fail(report))
    assert tuple(runner.summarize(verbose=False)) == (0, len(test.examples)) and len(test.examples) == 7
