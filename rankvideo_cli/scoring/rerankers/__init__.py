"""The rerankers rankvideo runs, one module each behind one registry (as ir_measures keeps one module per
provider): `rankvideo` (RankVideo, and any Qwen3-VL checkpoint zero-shot with its prompt) and `qwen3-vl-reranker`.

A reranker module holds its `Reranker` (name, the hub ids that select it, its frame sampling, the options it
takes) and its recipe (prompt builder, yes/no ids, score rule, fingerprint fields). The Qwen3-VL engine is shared
(`scoring.qwen3vl`: one vision pass per video, a video's queries batched, the last position only, out-of-memory
halving), and so are the frame sampler (`videos.sampling`, parameterised by each reranker's `SamplingConfig`),
the frame cache and the score store, whose keys hold the reranker's settings.

A third reranker is one module (`rerankers/<name>.py`: `RERANKER = Reranker(...)` and its recipe class, see
`base.Recipe`) and one line in `_MODULES`. Importing this package imports no torch.
"""

from __future__ import annotations

import re
from pathlib import Path

from rankvideo_cli.errors import UsageError
from rankvideo_cli.scoring.rerankers import qwen3_vl_reranker, rankvideo
from rankvideo_cli.scoring.rerankers.base import Recipe, Reranker, Selection

__all__ = ["RERANKERS", "Recipe", "Reranker", "Selection", "get_reranker", "select_reranker"]

_MODULES = (rankvideo, qwen3_vl_reranker)
RERANKERS: dict[str, Reranker] = {module.RERANKER.name: module.RERANKER for module in _MODULES}
DEFAULT_RERANKER = rankvideo.RERANKER.name
# a Hugging Face cache snapshot: .../models--{owner}--{name}/snapshots/{commit}
_SNAPSHOT = re.compile(r"^models--(?P<owner>[^/]+?)--(?P<name>[^/]+)$")


def get_reranker(name: str) -> Reranker:
    """The reranker of that name; a one-line `UsageError` naming the known ones otherwise."""
    try:
        return RERANKERS[name]
    except KeyError:
        raise UsageError(f"unknown reranker {name!r}: use one of {', '.join(RERANKERS)}") from None


def hub_id_of(model: str) -> str | None:
    """The hub id a model stands for: itself when it looks like one (so are `tiny-random` and `fake-scorer`,
    which no reranker claims), the repo id of a Hugging Face cache snapshot directory, else None (a local
    directory of unknown origin)."""
    path = Path(model).expanduser()
    if path.parent.name == "snapshots" and (match := _SNAPSHOT.match(path.parent.parent.name)):
        return f"{match['owner']}/{match['name']}"
    if path.exists() or model.startswith(("/", ".", "~")) or "\\" in model:
        return None
    return model


def select_reranker(model: str, reranker: str | None = None) -> Selection:
    """Which reranker scores `model`: `reranker` when given; else the one whose hub ids hold the model's hub id
    (a cache snapshot's repo id counts); else RankVideo, saying so for a local directory of unknown origin."""
    if reranker is not None:
        return Selection(get_reranker(reranker), "--reranker")
    hub_id = hub_id_of(model)
    if hub_id is None:
        note = (
            f"{model}: a local model whose origin rankvideo cannot tell; scored as {DEFAULT_RERANKER} "
            f"(give --reranker to choose: {', '.join(RERANKERS)})"
        )
        return Selection(RERANKERS[DEFAULT_RERANKER], "default: a local model of unknown origin", note)
    by = "the model id" if hub_id == model else "the hub cache's repo id"
    for candidate in RERANKERS.values():
        if hub_id.lower() in (known.lower() for known in candidate.hub_ids):
            return Selection(candidate, by)
    return Selection(RERANKERS[DEFAULT_RERANKER], "default")
