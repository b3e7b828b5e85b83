"""The use cases, one module each: what the command line, the PyTerrier reranker, the device workers and Python
callers run. A job takes typed values (`rankvideo_cli/options.py`, `scoring.options.ScorerOptions`) and returns
results; `cli/` builds those values from its options, calls one job, prints.

- `preflight`: every option and output location checked before inputs are read or a model loads.
- `rerank`: plan, score (here, or one worker per device: `devices`, `worker`), finish; `inputs`, `finish`,
  `dryrun` are its steps, shared with `merge` and the PyTerrier reranker.
- `merge`, `sample`, `eval`, `tune`, `rank`, `score` (and explain), `frames`, `videos`, `report`.
"""
