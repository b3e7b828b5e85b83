"""`rankvideo report`'s page: what the reranker did, query by query, with the frames the model saw.

- `data`: per query, its measures in both runs and the top K of each with moves, judgments, scores, answers.
- `thumbnails`: the reference's sampled frames as small JPEGs, from the frame cache or decoded (PyAV, no torch).
- `charts`: matplotlib's inline SVG charts; `page`: the Jinja2 page (templates/), one file or a directory.
"""
