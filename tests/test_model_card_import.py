"""The model card's `from rankvideo import VLMReranker` works, is this package's class, and imports no torch."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path


def test_rankvideo_import_is_the_same_lazy_class() -> None:
    probe = (
        "import sys, rankvideo; assert 'torch' not in sys.modules; "
        "from rankvideo import VLMReranker; import rankvideo_cli; "
        "assert VLMReranker is rankvideo_cli.VLMReranker; print(VLMReranker.__name__, rankvideo.__version__)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split()[0] == "VLMReranker"


def test_the_model_card_snippet_runs_as_written(tiny_model_dir, tmp_path) -> None:
    """The README's copy of the model card's snippet, run unchanged but for its video path, in a fresh
    interpreter; `hltcoe/RankVideo` resolves offline from a Hugging Face cache holding the tiny model's files
    under that id (the real weights cannot be fetched here), so the loading path is the hub id's own."""
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    snippet = re.search(r"The model card's snippet works.*?```python\n(.*?)```", readme, re.S).group(1)
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
