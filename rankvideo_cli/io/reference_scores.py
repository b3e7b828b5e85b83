"""Scores computed by the authors' code (`rankvideo/rerank.py` of tskow99/RANKVIDEO-Reasoning-Reranker), read
as they are: a directory of per-video files `{vid}_reranking_{model}.json`, each `{vid: {qid: {"logprob_yes",
"logprob_no", "logit_delta", "p_yes"}}}`. Users who ran it get a proper run file (the unscored tail, ties,
interpolation) and `eval` without scoring again (`rankvideo rank`, `rankvideo tune`).

The reference pairs query ids with scores by position (`zip(query_ids, scores)` after dropping the queries it has
no text for), so a video whose query list held an unknown query id got shifted scores there; nothing in the
files shows it, so nothing here can undo it.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

from rankvideo_cli.errors import InputError, UsageError
from rankvideo_cli.io.json_input import RepeatedKeyError, loads_unique, repeated_key_problem

FILE_PATTERN = re.compile(r"^(?P<vid>.+)_reranking_(?P<model>.+)\.json$")
Pair = tuple[str, str]


def reference_models(directory: Path) -> dict[str, int]:
    """Model name (the file-name suffix) -> number of files, for the files of the reference in `directory`."""
    models: dict[str, int] = {}
    for path in directory.iterdir():
        match = FILE_PATTERN.match(path.name)
        if match:
            models[match["model"]] = models.get(match["model"], 0) + 1
    return dict(sorted(models.items()))


def read_reference_scores(directory: str | Path, model: str | None = None) -> dict[Pair, float]:
    """(qid, docid) -> logit_delta from the reference's per-video files in `directory` (one model's: `model`
    names it when the directory holds several). Errors name the file (and its line for bad JSON)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UsageError(f"{directory}: not a directory of the reference's *_reranking_*.json files")
    models = reference_models(directory)
    if not models:
        raise UsageError(f"{directory}: no *_reranking_<model>.json files (the reference's rerank.py output)")
    if model is None:
        if len(models) > 1:
            listed = ", ".join(f"{name} ({count} files)" for name, count in models.items())
            raise UsageError(f"{directory} holds scores of several models: {listed}; choose one with --reference-model")
        model = next(iter(models))
    elif model not in models:
        raise UsageError(f"{directory}: no files of model {model!r} (found {', '.join(models)})")
    scores: dict[Pair, float] = {}
    for path in sorted(directory.iterdir()):
        match = FILE_PATTERN.match(path.name)
        if not match or match["model"] != model:
            continue
        payload = _read_json(path)
        if not isinstance(payload, dict) or len(payload) != 1:
            raise InputError(path, None, "expected {video_id: {query_id: scores}}")
        ((video, by_query),) = payload.items()
        if video != match["vid"]:
            raise InputError(path, None, f"holds video {video!r}, but its name says {match['vid']!r}")
        if not isinstance(by_query, dict):
            raise InputError(path, None, "expected {video_id: {query_id: scores}}")
        for qid, fields in by_query.items():
            value = (
                fields.get("logit_delta", fields.get("logit_delta_yes_minus_no")) if isinstance(fields, dict) else None
            )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise InputError(path, None, f"query {qid!r}: logit_delta must be a finite number, got {value!r}")
            scores[(str(qid), video)] = float(value)
    return scores


_LEVELS = ("video id", "query id", "score field")


def _read_json(path: Path) -> object:
    """The file's JSON; a key given twice in one object is an error naming it (json.loads would keep the last
    one: a silently chosen score)."""
    try:
        return loads_unique(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise InputError(path, error.lineno, f"invalid JSON: {error.msg}") from None
    except RepeatedKeyError as error:
        raise InputError(
            path,
            error.line,
            f"{repeated_key_problem(_LEVELS[min(error.depth, 2)], error.key)}; which of its scores is meant "
            "cannot be told (the reference writes each once)",
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(path, None, f"cannot read: {error}") from None
