"""VLMReranker (the model card's API) and the rows behind `rankvideo score`, on real decoded video files; the
model card's `from rankvideo import VLMReranker` works, is this package's class and imports no torch, and the
card's snippet runs as written."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    SAMPLE,
    TINY,
)
from video_factory import make_video

from rankvideo_cli.errors import UsageError
from rankvideo_cli.scoring import reranker as reranker_module
from rankvideo_cli.scoring.reranker import VLMReranker
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
    from rankvideo_cli.videos import frames

    decoded: list[str] = []
    real = frames.sample_video
    monkeypatch.setattr(frames, "sample_video", lambda path, config: decoded.append(str(path)) or real(path, config))
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
        "from rankvideo import VLMReranker; import rankvideo_cli; "
        "assert VLMReranker is rankvideo_cli.VLMReranker; print(VLMReranker.__name__, rankvideo.__version__)"
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
