"""`from rankvideo import VLMReranker`, as the model card writes it: the same class as `rankvideo_cli.VLMReranker`,
loaded as lazily (torch and transformers import only when `VLMReranker` is used), with the result objects of its
`rank()`. `rankvideo.pyterrier` holds the PyTerrier reranker (with the `pyterrier` extra)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import rankvideo_cli
from rankvideo_cli import __version__

if TYPE_CHECKING:
    from rankvideo_cli.scoring.reranker import RankedResults, RankedVideo, UnscoredVideo, VLMReranker

__all__ = ["RankedResults", "RankedVideo", "UnscoredVideo", "VLMReranker", "__version__"]


def __getattr__(name: str) -> Any:
    # rankvideo_cli's lazy attributes are this package's: one lazy import, not two
    if name in __all__:
        return getattr(rankvideo_cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
