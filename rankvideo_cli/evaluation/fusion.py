"""Choosing `--interpolate ALPHA` (and its normalisation) on data: a sweep with k-fold cross-validation over
queries, on stored model scores (no model is loaded).

For every configuration (ALPHA, normalisation) of the grid, each judged query's value of one measure is computed
on the ranking `ranking.rerank` would write; then, fold by fold, the configuration with the best mean on the
other folds' queries ranks the held-out fold. The cross-validated measure is the mean over all judged queries of
their held-out values, so no query is scored by a choice made on it. The interpolated run written is that one:
each query ranked with its own fold's choice. The configuration chosen on all queries is reported too, for the
next `rankvideo rerank --interpolate`.

Ties between configurations (common: ALPHA = 1 ranks by the model alone whatever the normalisation) go to the
earlier one in grid order (normalisations as given, ALPHA ascending), so the result is deterministic.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rankvideo_cli.errors import InputError, UsageError
from rankvideo_cli.evaluation.measures import MeasureSpec, evaluate_run, parse_measure_specs
from rankvideo_cli.evaluation.ranking import NORMALIZATIONS, RankedDoc, rerank
from rankvideo_cli.io.json_input import parse_json_line
from rankvideo_cli.io.runs import Candidate
from rankvideo_cli.io.text import display_name, iter_lines

Pair = tuple[str, str]
DEFAULT_ALPHAS = tuple(round(step / 10, 1) for step in range(11))
DEFAULT_NORMALIZATIONS = ("minmax", "zscore")


@dataclass(frozen=True, order=True)
class FusionConfig:
    alpha: float
    normalization: str

    @property
    def label(self) -> str:
        return f"{self.alpha:g}/{self.normalization}"


@dataclass
class FoldResult:
    fold: int
    test_queries: list[str]
    chosen: FusionConfig
    train_mean: float  # the chosen configuration's mean on the other folds
    test_mean: float  # its mean on this fold


@dataclass
class SweepResult:
    measure: str
    configs: list[FusionConfig]
    per_query: dict[FusionConfig, dict[str, float]]  # every judged query's value under each configuration
    folds: list[FoldResult]
    cross_validated: float  # mean over judged queries of their held-out values
    chosen_on_all: FusionConfig  # best mean over every judged query (for the next run)
    model_only: float  # the measure with ALPHA = 1 (the model alone) for comparison
    first_stage_in_head: float  # ALPHA = 0: the first stage's order within the head
    fold_of: dict[str, int] = field(default_factory=dict)

    def mean(self, config: FusionConfig, queries: Sequence[str] | None = None) -> float:
        values = self.per_query[config]
        chosen = list(values) if queries is None else queries
        return statistics.fmean(values[qid] for qid in chosen) if chosen else math.nan


def read_model_scores(path: str | Path, reference_model: str | None = None) -> dict[Pair, float]:
    """(qid, docid) -> logit_delta from a `rankvideo rerank --scores` JSONL file, or from a directory of the
    reference's per-video `*_reranking_<model>.json` files (`reference_scores`); errors name file and line."""
    if Path(path).is_dir():
        from rankvideo_cli.io.reference_scores import read_reference_scores

        return read_reference_scores(path, reference_model)
    name = display_name(path)
    scores: dict[Pair, float] = {}
    first_line: dict[Pair, int] = {}
    for number, line in iter_lines(path):
        if not line.strip():
            continue
        record = parse_json_line(name, number, line)
        if not isinstance(record, dict):
            raise InputError(name, number, "expected one JSON object per line")
        missing = [key for key in ("qid", "docid", "logit_delta") if key not in record]
        if missing:
            raise InputError(name, number, f"missing key {missing[0]!r} (a `rankvideo rerank --scores` file)")
        pair = (str(record["qid"]), str(record["docid"]))
        value = record["logit_delta"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(name, number, f"logit_delta must be a finite number, got {json.dumps(value)}")
        if pair in scores:
            raise InputError(
                name, number, f"duplicate score for {pair[0]}/{pair[1]} (first at line {first_line[pair]})"
            )
        scores[pair] = float(value)
        first_line[pair] = number
    if not scores:
        raise InputError(name, None, "no scores")
    return scores


def grid(alphas: Sequence[float], normalizations: Sequence[str]) -> list[FusionConfig]:
    """The configurations to try, validated: ALPHA in [0, 1], known normalisations, each once, grid order."""
    if not alphas or not normalizations:
        raise UsageError("the sweep needs at least one ALPHA and one normalization")
    for alpha in alphas:
        if not (isinstance(alpha, (int, float)) and 0.0 <= alpha <= 1.0):
            raise UsageError(f"--alphas: each ALPHA must be between 0 and 1, got {alpha!r}")
    for normalization in normalizations:
        if normalization not in NORMALIZATIONS:
            raise UsageError(f"unknown normalization {normalization!r}; choose from {', '.join(NORMALIZATIONS)}")
    configs = [FusionConfig(float(alpha), norm) for norm in normalizations for alpha in sorted(set(alphas))]
    return list(dict.fromkeys(configs))


MAX_ALPHAS = 1001  # 0:1:0.001; a finer grid only overfits the folds, and each value costs a pass over the run


def parse_alphas(text: str) -> list[float]:
    """`0,0.25,0.5` or `0:1:0.1` (start:stop:step, stop included) -> the ALPHA values (at most `MAX_ALPHAS`)."""
    shape = f"--alphas must be a list (0,0.5,1) or a range (0:1:0.1), got {text!r}"
    try:
        if ":" in text:
            start, stop, step = (float(part) for part in text.split(":"))
            if not all(map(math.isfinite, (start, stop, step))):
                raise ValueError
            if step <= 0:
                raise UsageError(f"--alphas {text}: the step must be above 0, got {step:g}")
            if stop < start:
                raise UsageError(
                    f"--alphas {text}: the range is reversed (START {start:g} > STOP {stop:g}): "
                    f"write {stop:g}:{start:g}:{step:g}"
                )
            count = math.floor((stop - start) / step + 1e-9) + 1
            _check_count(text, count)
            return [round(start + index * step, 10) for index in range(count)]
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(shape) from None
    _check_count(text, len(values))
    return values


def _check_count(text: str, count: int) -> None:
    if count > MAX_ALPHAS:
        raise UsageError(
            f"--alphas {text} gives {count:,} values; at most {MAX_ALPHAS:,} (e.g. 0:1:0.001): each is a full "
            "evaluation of the run, and a finer grid only fits the folds' noise"
        )


def _truncation(spec: MeasureSpec, depth: int) -> int | None:
    """How many top documents decide the measure when its cutoff lies within depth (ranks below depth then
    cannot matter), else None (the whole ranking is evaluated)."""
    cutoff = spec.measure.params.get("cutoff")
    return int(cutoff) if cutoff is not None and cutoff <= depth else None


def _ranked_scores(ranked: Mapping[str, Sequence[RankedDoc]], keep: int | None) -> dict[str, dict[str, float]]:
    return {
        qid: {doc.docid: doc.score for doc in (docs[:keep] if keep is not None else docs)}
        for qid, docs in ranked.items()
    }


@dataclass(frozen=True)
class SweepOptions:
    """What a sweep tries and how it chooses: `measure` over the grid `alphas` x `normalizations` of a run
    reranked to `depth`, chosen by `folds`-fold cross-validation over the judged queries (`seed` deals them)."""

    measure: str = "nDCG@10"
    alphas: Sequence[float] = DEFAULT_ALPHAS
    normalizations: Sequence[str] = DEFAULT_NORMALIZATIONS
    depth: int = 100
    folds: int = 5
    seed: int = 0


def sweep(
    run: Mapping[str, Sequence[Candidate]],
    model_scores: Mapping[Pair, float],
    qrels: Mapping[str, Mapping[str, int]],
    options: SweepOptions = SweepOptions(),
    on_config: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """The cross-validated sweep described in the module docstring (`qrels` as qid -> {docid: relevance}).

    `on_config(done, total)` is called after each configuration is evaluated (a progress display)."""
    measure, alphas, normalizations = options.measure, options.alphas, options.normalizations
    depth, folds, seed = options.depth, options.folds, options.seed
    specs = parse_measure_specs([measure])
    if len(specs) != 1:
        raise UsageError(f"--measure must name one measure, {measure!r} names {len(specs)}")
    spec = specs[0]
    configs = grid(alphas, normalizations)
    judged = sorted(qrels)
    if folds < 2 or folds > len(judged):
        raise UsageError(f"--folds must be between 2 and the {len(judged)} judged queries, got {folds}")
    keep = _truncation(spec, depth)
    window = {qid: candidates[:depth] for qid, candidates in run.items()} if keep is not None else run
    per_query: dict[FusionConfig, dict[str, float]] = {}
    for done, config in enumerate(configs, 1):
        ranked = rerank(window, model_scores, depth=depth, interpolate=config.alpha, normalization=config.normalization)
        evaluation = evaluate_run(config.label, _ranked_scores(ranked, keep), qrels, [spec])
        per_query[config] = {qid: float(evaluation.per_query.at[qid, spec.label]) for qid in judged}
        if on_config is not None:
            on_config(done, len(configs))
    order = list(judged)
    random.Random(seed).shuffle(order)
    fold_of = {qid: position % folds for position, qid in enumerate(order)}
    result = SweepResult(
        measure=spec.label,
        configs=configs,
        per_query=per_query,
        folds=[],
        cross_validated=math.nan,
        chosen_on_all=configs[0],
        model_only=math.nan,
        first_stage_in_head=math.nan,
        fold_of=fold_of,
    )
    held_out: dict[str, float] = {}
    for fold in range(folds):
        test = [qid for qid in judged if fold_of[qid] == fold]
        train = [qid for qid in judged if fold_of[qid] != fold]
        chosen = _best(result, configs, train)
        held_out.update({qid: per_query[chosen][qid] for qid in test})
        result.folds.append(FoldResult(fold, test, chosen, result.mean(chosen, train), result.mean(chosen, test)))
    result.cross_validated = statistics.fmean(held_out[qid] for qid in judged)
    result.chosen_on_all = _best(result, configs, judged)
    normalization = configs[0].normalization
    result.model_only = result.mean(FusionConfig(1.0, normalization)) if 1.0 in alphas else math.nan
    result.first_stage_in_head = result.mean(FusionConfig(0.0, normalization)) if 0.0 in alphas else math.nan
    return result


def _best(result: SweepResult, configs: Sequence[FusionConfig], queries: Sequence[str]) -> FusionConfig:
    best, best_mean = configs[0], -math.inf
    for config in configs:  # strictly better only: ties keep the earlier configuration
        mean = result.mean(config, queries)
        if mean > best_mean:
            best, best_mean = config, mean
    return best


def cross_validated_run(
    run: Mapping[str, Sequence[Candidate]],
    model_scores: Mapping[Pair, float],
    result: SweepResult,
    *,
    depth: int,
) -> dict[str, list[RankedDoc]]:
    """The run in which each judged query is ranked with its own fold's choice (and an unjudged query with the
    choice made on all queries), by `ranking.rerank`, the code that writes every rankvideo run."""
    chosen_by_fold = {fold.fold: fold.chosen for fold in result.folds}
    ranked: dict[str, list[RankedDoc]] = {}
    for qid in run:
        fold = result.fold_of.get(qid)
        config = chosen_by_fold[fold] if fold is not None else result.chosen_on_all
        ranked.update(
            rerank(
                {qid: run[qid]},
                model_scores,
                depth=depth,
                interpolate=config.alpha,
                normalization=config.normalization,
            )
        )
    return ranked


def sweep_dict(result: SweepResult) -> dict[str, Any]:
    """The sweep as JSON-able data."""
    return {
        "measure": result.measure,
        "cross_validated": result.cross_validated,
        "chosen_on_all": {"alpha": result.chosen_on_all.alpha, "normalization": result.chosen_on_all.normalization},
        "model_only": None if math.isnan(result.model_only) else result.model_only,
        "first_stage_in_head": None if math.isnan(result.first_stage_in_head) else result.first_stage_in_head,
        "folds": [
            {
                "fold": fold.fold,
                "queries": len(fold.test_queries),
                "alpha": fold.chosen.alpha,
                "normalization": fold.chosen.normalization,
                "train_mean": fold.train_mean,
                "test_mean": fold.test_mean,
            }
            for fold in result.folds
        ],
        "grid": [
            {"alpha": config.alpha, "normalization": config.normalization, "mean": result.mean(config)}
            for config in result.configs
        ],
    }
