"""`from rankvideo.pyterrier import RankVideoReranker`: RankVideo as a PyTerrier reranker, and `read_topics` for
the query files `rankvideo rerank` reads (the implementation is `rankvideo_cli.pyterrier`; it needs the `pyterrier`
extra and says so when PyTerrier is missing)."""

from __future__ import annotations

from rankvideo_cli.pyterrier import RankVideoReranker, read_topics

__all__ = ["RankVideoReranker", "read_topics"]
