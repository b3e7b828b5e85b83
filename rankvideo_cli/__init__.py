"""rankvideo: rerank text-to-video retrieval runs with RankVideo (Qwen3-VL)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from rankvideo_cli.scoring.reranker import VLMReranker

__all__ = ["VLMReranker", "__version__"]


def __getattr__(name: str) -> Any:
    # torch and transformers load only when the API is used, so `rankvideo --help` stays instant.
    if name == "VLMReranker":
        from rankvideo_cli.scoring.reranker import VLMReranker

        return VLMReranker
    raise AttributeError(name)
