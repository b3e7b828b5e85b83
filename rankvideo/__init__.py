"""`from rankvideo import VLMReranker`, as the model card writes it: the same class as `rankvideo_cli.VLMReranker`.

Loaded lazily (torch and transformers import only when `VLMReranker` is used), like `rankvideo_cli` itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rankvideo_cli import __version__

if TYPE_CHECKING:
    from rankvideo_cli.scoring.reranker import VLMReranker

__all__ = ["VLMReranker", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "VLMReranker":
        from rankvideo_cli.scoring.reranker import VLMReranker

        return VLMReranker
    raise AttributeError(name)
