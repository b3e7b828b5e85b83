"""`VLMReranker`: the RankVideo model card's Python API, on top of `Qwen3VLScorer` and the frame sampler.

    from rankvideo_cli import VLMReranker
    reranker = VLMReranker(model_path="hltcoe/RankVideo")
    scores = reranker.score_batch(queries=["a dog surfing"], video_paths=["clip.mp4"])
    scores[0]["logit_delta_yes_minus_no"]

Pairs are grouped by video path, so each video is decoded once and its vision-tower pass is shared by all
of its queries (the reference decodes every video again for every pair).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rankvideo_cli.errors import UsageError
from rankvideo_cli.options import from_values
from rankvideo_cli.scoring.base import INFERENCE_PROMPT, PairScore, Scorer
from rankvideo_cli.scoring.loading import load_scorer
from rankvideo_cli.scoring.options import DEFAULT_MODEL, ScorerOptions
from rankvideo_cli.videos.config import SamplingConfig
from rankvideo_cli.videos.frames import sample_video


class VLMReranker:
    """Score (query, video file) pairs with RankVideo.

    `model_path`: hub id (default `hltcoe/RankVideo`), local directory or `tiny-random`; `revision` and
    `cache_dir` for a hub id; `dtype`, `device`, `attn_implementation` (default: from the device);
    `score_mode` ("full" or "reference"), `batch_size` (default: from the free memory), `prompt` ("inference",
    the default and the published setting, or "training": experimental, the authors' training prompt and
    objective) and `prefix_cache` (with the training prompt: each video's prefix computed once for all its
    queries; False for one full pass each); `reranker` (None: chosen by the model's hub id, `"qwen3-vl-reranker"`
    for Qwen/Qwen3-VL-Reranker-2B/-8B, else `"rankvideo"`) and `instruction` (Qwen3-VL-Reranker's). The options
    are `ScorerOptions`', checked before anything loads. Each reranker samples its own frames; `score_batch`'s
    `fps` and `max_frames` default to them.
    """

    def __init__(
        self,
        model_path: str = DEFAULT_MODEL,
        *,
        revision: str | None = None,
        cache_dir: str | Path | None = None,
        dtype: str | None = None,
        device: str | None = None,
        attn_implementation: str | None = None,
        score_mode: str = "full",
        batch_size: int | None = None,
        prompt: str = INFERENCE_PROMPT,
        prefix_cache: bool = True,
        reranker: str | None = None,
        instruction: str | None = None,
    ) -> None:
        # the keywords are ScorerOptions' fields; the model card names the model `model_path`
        cache = str(cache_dir) if cache_dir is not None else None
        self.options = from_values(ScorerOptions, {**locals(), "model": model_path, "cache_dir": cache})
        self.options.check()
        self.sampling = self.options.sampling()
        self.scorer: Scorer = load_scorer(self.options)

    @classmethod
    def from_scorer(cls, scorer: Scorer, sampling: SamplingConfig | None = None) -> VLMReranker:
        """Wrap an already loaded scorer (any `Scorer`), which sees frames sampled as `sampling` says (default: its
        reranker's, else RankVideo's)."""
        reranker = cls.__new__(cls)
        reranker.scorer = scorer
        own = getattr(getattr(scorer, "reranker", None), "sampling", None)  # a Qwen3VLScorer knows its reranker's
        reranker.sampling = sampling or own or SamplingConfig()
        return reranker

    def score_batch(
        self,
        queries: Sequence[str],
        video_paths: Sequence[str | Path],
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> list[dict[str, float]]:
        """One dict per (queries[i], video_paths[i]): `logit_delta_yes_minus_no`, `logit_delta`, `p_yes`,
        `logprob_yes`, `logprob_no`. A video that cannot be decoded raises its `VideoError`."""
        config = self._pairs_config(queries, video_paths, fps, max_frames)
        scores = score_grouped(self.scorer, list(queries), [str(path) for path in video_paths], config)
        return [score.to_dict() for score in scores]

    def generate_batch(
        self,
        queries: Sequence[str],
        video_paths: Sequence[str | Path],
        max_new_tokens: int = 512,
        fps: float | None = None,
        max_frames: int | None = None,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        top_k: int | None = None,
        seed: int | None = None,
    ) -> list[str]:
        """The model's full answer (its reasoning) to each (queries[i], video_paths[i]), from the scoring
        prompt and frames; greedy unless a `temperature` is given. Pairs are grouped by video: one decode and
        one vision-tower pass per video."""
        from rankvideo_cli.scoring.generate import GenerationSettings, generate_for_video
        from rankvideo_cli.scoring.qwen3vl import Qwen3VLScorer

        if not isinstance(self.scorer, Qwen3VLScorer):
            raise UsageError(f"generate_batch needs a Qwen3-VL scorer, not {type(self.scorer).__name__}")
        config = self._pairs_config(queries, video_paths, fps, max_frames)
        settings = GenerationSettings(max_new_tokens, temperature, top_p, top_k, seed)
        texts: dict[int, str] = {}
        for path, positions in _positions_by_video([str(path) for path in video_paths]).items():
            answers = generate_for_video(
                self.scorer, [queries[p] for p in positions], sample_video(path, config), settings
            )
            texts.update((position, answer.text) for position, answer in zip(positions, answers, strict=True))
        return [texts[position] for position in range(len(queries))]

    def _pairs_config(
        self, queries: Sequence[str], video_paths: Sequence[str | Path], fps: float | None, max_frames: int | None
    ) -> SamplingConfig:
        """The sampling of a batch of (queries[i], video_paths[i]) pairs, once the two lists are known to pair up:
        the reranker's, with the model card's `fps` and `max_frames` where given."""
        if len(queries) != len(video_paths):
            raise UsageError(f"{len(queries)} queries but {len(video_paths)} video paths: they are pairs")
        sampling = self.sampling if fps is None else replace(self.sampling, fps=fps)
        return sampling if max_frames is None else replace(sampling, max_frames=max_frames)


def _positions_by_video(video_paths: list[str]) -> dict[str, list[int]]:
    by_video: dict[str, list[int]] = {}
    for position, path in enumerate(video_paths):
        by_video.setdefault(path, []).append(position)
    return by_video


def score_grouped(
    scorer: Scorer, queries: list[str], video_paths: list[str], config: SamplingConfig
) -> list[PairScore]:
    """Score pairs, decoding each distinct video path once and scoring all its queries in one call."""
    results: dict[int, PairScore] = {}
    for path, positions in _positions_by_video(video_paths).items():
        video = sample_video(path, config)
        scores = scorer.score_video([queries[p] for p in positions], video)
        results.update(zip(positions, scores, strict=True))
    return [results[position] for position in range(len(queries))]
