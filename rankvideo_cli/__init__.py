"""rankvideo: rerank text-to-video retrieval runs with RankVideo (Qwen3-VL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rankvideo_cli.scoring.reranker import RankedResults, RankedVideo, UnscoredVideo, VLMReranker

# the Python API: `VLMReranker` and the result objects its `rank()` returns
__all__ = ["RankedResults", "RankedVideo", "UnscoredVideo", "VLMReranker", "__version__"]


def __getattr__(name: str) -> Any:
    # torch and transformers load only when the API is used, so `rankvideo --help` stays instant.
    if name in __all__:
        from rankvideo_cli.scoring import reranker

        return getattr(reranker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
