"""`from rankvideo import VLMReranker`, as the model card writes it: the same class as `rankvideo_cli.VLMReranker`,
loaded as lazily (torch and transformers import only when `VLMReranker` is used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

# the module-level __getattr__ of rankvideo_cli serves this package too: one lazy import, not two
from rankvideo_cli import __getattr__ as __getattr__
from rankvideo_cli import __version__

if TYPE_CHECKING:
    from rankvideo_cli.scoring.reranker import VLMReranker

__all__ = ["VLMReranker", "__version__"]
