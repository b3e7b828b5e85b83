"""`VLMReranker`: the RankVideo model card's Python API, and a `rank()` as AnswerDotAI rerankers' gives, on top of
`Qwen3VLScorer` and the frame sampler.

    from rankvideo import VLMReranker
    reranker = VLMReranker(model="hltcoe/RankVideo")          # the model card's `model_path=` works too
    reranker.rank("a dog surfing", ["a.mp4", "b.mp4"], top_k=10)   # RankedResults, best first
    reranker.score_batch(queries=["a dog surfing"], video_paths=["a.mp4"])[0]["logit_delta_yes_minus_no"]

Pairs are grouped by video path, so each video is decoded once and its vision-tower pass is shared by all
of its queries (the reference decodes every video again for every pair).
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import SupportsIndex

from rankvideo_cli.errors import UsageError
from rankvideo_cli.messages import shorten
from rankvideo_cli.options import OptionError, at_least
from rankvideo_cli.scoring.base import INFERENCE_PROMPT, PairScore, Scorer
from rankvideo_cli.scoring.loading import load_scorer
from rankvideo_cli.scoring.options import DEFAULT_MODEL, ScorerOptions
from rankvideo_cli.videos.config import FRAME_FACTOR, SamplingConfig
from rankvideo_cli.videos.container import VideoError
from rankvideo_cli.videos.frames import sample_video


@dataclass(frozen=True)
class RankedVideo:
    """One video of a ranking. `score` is the ranking score, `logprob_yes - logprob_no` (the model card's
    `logit_delta_yes_minus_no`, the score `rankvideo rerank` writes); `p_yes` is its sigmoid. `rank` is 1-based."""

    rank: int
    doc_id: str
    video_path: str
    score: float
    p_yes: float
    logprob_yes: float
    logprob_no: float

    def __repr__(self) -> str:
        # rounded for reading: the fields hold the exact floats
        scores = f"score={self.score:.4f}, p_yes={self.p_yes:.4f}"
        return f"RankedVideo(rank={self.rank}, {_named(self.doc_id, self.video_path)}, {scores})"


@dataclass(frozen=True)
class UnscoredVideo:
    """A video `rank()` could not score, and why: `kind` is a `VideoError` kind (`missing`, `corrupt`, ...) or
    `non_finite_score`; `reason` is the one-line message."""

    doc_id: str
    video_path: str
    kind: str
    reason: str

    def __repr__(self) -> str:
        return f"UnscoredVideo({_named(self.doc_id, self.video_path)}, kind={self.kind!r}, reason={self.reason!r})"


def _named(doc_id: str, video_path: str) -> str:
    """A video's doc id in a repr, and its path where the doc id is not the path itself."""
    return f"doc_id={doc_id!r}" if doc_id == video_path else f"doc_id={doc_id!r}, video_path={video_path!r}"


@dataclass(frozen=True)
class RankedResults:
    """What `VLMReranker.rank` returns: the scored videos best first (`results`, cut to `top_k`), and those it
    could not score (`unscored`, in the order given; never silently lost). Iterating, `len` and indexing go over
    `results`."""

    query: str
    results: tuple[RankedVideo, ...]
    unscored: tuple[UnscoredVideo, ...] = ()

    def __iter__(self) -> Iterator[RankedVideo]:
        return iter(self.results)

    def __len__(self) -> int:
        return len(self.results)

    def __getitem__(self, position: int) -> RankedVideo:
        return self.results[position]

    def __repr__(self) -> str:
        # one video a line: a ranking reads as a list, not as one line of a thousand characters
        def listed(items: Sequence[object]) -> str:
            return "[" + "".join(f"\n    {item!r}," for item in items) + ("\n]" if items else "]")

        return f"RankedResults(query={self.query!r}, results={listed(self.results)}, unscored={listed(self.unscored)})"

    def doc_ids(self) -> list[str]:
        """The ranked doc ids, best first."""
        return [result.doc_id for result in self.results]


class UnscoredVideoWarning(UserWarning):
    """`rank()` left videos out of its ranking (each is in `RankedResults.unscored`, with its reason)."""


class VLMReranker:
    """Score and rank video files against text queries with RankVideo (or another reranker of the registry).

    The options are `ScorerOptions`' fields, checked before anything loads, and load the model at once:
    `model` (also `model_path`, the model card's name: a hub id, default `hltcoe/RankVideo`, a local directory,
    `tiny-random` or `fake-scorer`); `revision` and `cache_dir` for a hub id; `dtype`, `device`,
    `attn_implementation` (default: from the device); `score_mode` ("full" or "reference"), `batch_size` (default:
    from the free memory), `prompt` ("inference", the default and the published setting, or "training":
    experimental, the authors' training prompt and objective) and `prefix_cache` (with the training prompt: each
    video's prefix computed once for all its queries; False for one full pass each); `reranker` (None: chosen by
    the model's hub id, `"qwen3-vl-reranker"` for Qwen/Qwen3-VL-Reranker-2B/-8B, else `"rankvideo"`) and
    `instruction` (Qwen3-VL-Reranker's). Each reranker samples its own frames: `fps` and `max_frames` change them
    for every call (`score_batch` and `generate_batch` also take them per call).
    """

    options: ScorerOptions | None  # None: made by `from_scorer`, around a scorer loaded elsewhere

    def __init__(
        self,
        model_path: str | None = None,
        *,
        model: str | None = None,
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
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> None:
        self.options = ScorerOptions(
            model=_one_model(model_path, model),
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            dtype=dtype,
            device=device,
            attn_implementation=attn_implementation,
            score_mode=score_mode,
            batch_size=batch_size,
            prompt=prompt,
            prefix_cache=prefix_cache,
            reranker=reranker,
            instruction=instruction,
        )
        self.options.check()
        self.sampling = sampling_with(self.options.sampling(), fps, max_frames)
        self.scorer: Scorer = load_scorer(self.options)

    @classmethod
    def from_scorer(cls, scorer: Scorer, sampling: SamplingConfig | None = None) -> VLMReranker:
        """Wrap an already loaded scorer (any `Scorer`), which sees frames sampled as `sampling` says (default: its
        reranker's, else RankVideo's)."""
        reranker = cls.__new__(cls)
        reranker.options = None
        reranker.scorer = scorer
        own = getattr(getattr(scorer, "reranker", None), "sampling", None)  # a Qwen3VLScorer knows its reranker's
        reranker.sampling = sampling or own or SamplingConfig()
        return reranker

    def __repr__(self) -> str:
        # read from what is already known: printing never loads or measures anything
        options = self.options or _options_of(self.scorer)
        fields = {
            "model": options.model if options else _model_name(self.scorer),
            "reranker": options.selection().reranker.name if options else _reranker_name(self.scorer),
            "device": _scorer_setting(self.scorer, "device", options.device if options else None),
            "dtype": _scorer_setting(self.scorer, "dtype", options.dtype if options else None),
        }
        shown = ", ".join(f"{name}={value!r}" for name, value in fields.items() if value is not None)
        return f"VLMReranker({shown})"

    def rank(
        self,
        query: str,
        video_paths: Sequence[str | Path],
        top_k: int | None = None,
        *,
        doc_ids: Sequence[str] | None = None,
    ) -> RankedResults:
        """The videos ranked for `query`, best first: score descending, ties broken by doc id descending, as
        `rankvideo rerank` (and trec_eval) order a run. `top_k` keeps the best k (None: all). `doc_ids` names the
        videos (default: each path as given); a doc id given twice is refused. A video that cannot be decoded
        (or whose score is not finite) is left out of the ranking, listed in `unscored` with its reason, and
        counted in an `UnscoredVideoWarning`."""
        _require_a_list("video_paths", video_paths, "paths", "rank(query, [path])")
        if doc_ids is not None:
            _require_a_list("doc_ids", doc_ids, "names", "rank(query, [path, ...], doc_ids=[name, ...])")
        top_k = _whole_number_or_none("top_k", top_k)
        at_least("top_k", top_k)
        if not query.strip():
            raise UsageError("the query is empty: give the text to rank the videos against")
        names = _doc_ids(video_paths, doc_ids)
        paths = [str(path) for path in video_paths]
        outcomes = score_each_video(self.scorer, query, paths, self.sampling)
        scored: list[tuple[float, str, str, PairScore]] = []
        unscored: list[UnscoredVideo] = []
        for doc_id, path in zip(names, paths, strict=True):
            outcome = outcomes[path]
            if isinstance(outcome, VideoError):
                unscored.append(UnscoredVideo(doc_id, path, outcome.kind, str(outcome)))
            elif not math.isfinite(outcome.logit_delta):
                reason = f"{path}: the model's score is {outcome.logit_delta}"
                unscored.append(UnscoredVideo(doc_id, path, "non_finite_score", reason))
            else:
                scored.append((outcome.logit_delta, doc_id, path, outcome))
        scored.sort(key=lambda entry: (entry[0], entry[1]), reverse=True)  # score desc, then doc id desc
        results = tuple(
            RankedVideo(rank, doc_id, path, score.logit_delta, score.p_yes, score.logprob_yes, score.logprob_no)
            for rank, (_, doc_id, path, score) in enumerate(scored[:top_k], start=1)
        )
        if unscored:
            _warn_unscored(unscored, len(paths))
        return RankedResults(query, results, tuple(unscored))

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
        return sampling_with(self.sampling, fps, max_frames)


def _one_model(model_path: str | None, model: str | None) -> str:
    """The model named by `model` or the model card's `model_path` (the same option under two names)."""
    if model is not None and model_path is not None and model != model_path:
        raise UsageError(
            f"model={model!r} and model_path={model_path!r} name two models: give one (model_path is the model "
            "card's name for model)"
        )
    return model or model_path or DEFAULT_MODEL


def sampling_with(sampling: SamplingConfig, fps: float | None, max_frames: int | None) -> SamplingConfig:
    """`sampling` with `fps` and `max_frames` where given, refused when the sampler could not use them."""
    if fps is not None:
        if not (math.isfinite(fps) and fps > 0):
            raise OptionError("fps", f"must be a positive number of frames per second, got {fps}")
        sampling = replace(sampling, fps=fps)
    if max_frames is not None:
        at_least("max_frames", max_frames, FRAME_FACTOR)  # the sampler takes frames in pairs
        sampling = replace(sampling, max_frames=max_frames)
    return sampling


def _options_of(scorer: Scorer) -> ScorerOptions | None:
    """The options a scorer loaded elsewhere was made from, where it keeps them (a `DeferredScorer` does)."""
    options = getattr(scorer, "options", None)
    return options if isinstance(options, ScorerOptions) else None


def _model_name(scorer: Scorer) -> str:
    """The model of a scorer loaded elsewhere, from its attributes (its fingerprint may need the model loaded)."""
    named = getattr(scorer, "model_id", None) or getattr(scorer, "name", None)  # a Qwen3VLScorer's, a FakeScorer's
    return str(named) if named is not None else type(scorer).__name__


def _reranker_name(scorer: Scorer) -> str | None:
    chosen = getattr(scorer, "reranker", None)  # a Qwen3VLScorer's is the registry's entry, a FakeScorer's a name
    return getattr(chosen, "name", chosen) if chosen is not None else None


def _scorer_setting(scorer: Scorer, name: str, asked: str | None) -> str | None:
    """The device or dtype the loaded model is on (`torch.float32` shown as `float32`), else the one asked for."""
    value = getattr(scorer, name, None)
    return str(value).removeprefix("torch.") if value is not None else asked


def _whole_number_or_none(name: str, value: object) -> int | None:
    """`value` as an int: an int, or what slices as one (numpy's integers); a float or a bool is refused here,
    where slicing would refuse 1.5 with a bare TypeError and take True as 1."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, SupportsIndex):
        raise OptionError(name, f"must be a whole number (None: all), got {value!r}")
    return operator.index(value)


def _require_a_list(name: str, given: object, list_of: str, usage: str) -> None:
    """A str is a sequence too: taken as the list, it would be ranked letter by letter ("video path 'v' is given
    twice"); a Path or bytes would fail further in, less clearly."""
    if isinstance(given, (str, bytes, Path)):
        kind = "Path" if isinstance(given, Path) else type(given).__name__
        raise TypeError(f"{name} must be a list of {list_of}, not a {kind}: {usage}")


def _doc_ids(video_paths: Sequence[str | Path], doc_ids: Sequence[str] | None) -> list[str]:
    names = [str(path) for path in video_paths] if doc_ids is None else [str(name) for name in doc_ids]
    if len(names) != len(video_paths):
        raise UsageError(f"{len(names)} doc ids but {len(video_paths)} video paths: one doc id per video")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            what = "video path" if doc_ids is None else "doc id"
            raise UsageError(f"{what} {shorten(name)!r} is given twice: a ranking holds each video once")
        seen.add(name)
    return names


def _warn_unscored(unscored: list[UnscoredVideo], total: int) -> None:
    first = unscored[0].reason
    warnings.warn(
        f"{len(unscored)} of {total} videos could not be scored and are not ranked (see RankedResults.unscored); "
        f"first: {first}",
        UnscoredVideoWarning,
        stacklevel=3,  # the caller of rank()
    )


def _positions_by_video(video_paths: list[str]) -> dict[str, list[int]]:
    by_video: dict[str, list[int]] = {}
    for position, path in enumerate(video_paths):
        by_video.setdefault(path, []).append(position)
    return by_video


def score_each_video(
    scorer: Scorer, query: str, video_paths: list[str], config: SamplingConfig
) -> dict[str, PairScore | VideoError]:
    """Each distinct video path's score against `query`, or the `VideoError` that kept it from being sampled."""
    outcomes: dict[str, PairScore | VideoError] = {}
    for path in dict.fromkeys(video_paths):
        try:
            video = sample_video(path, config)
        except VideoError as error:
            outcomes[path] = error
            continue
        (outcomes[path],) = scorer.score_video([query], video)
    return outcomes


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
