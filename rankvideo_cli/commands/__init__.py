"""One module per command's use case, each reading as the steps of that command; `cli.py` parses options and
calls one function here per command.

- `preflight`: every option and output location checked before inputs are read or a model loads.
- `inputs`, `finish`: a rerank's (and merge's) first and last steps; `dryrun`: the plan without a model.
- `rerank`, `worker`, `merge`, `sample`, `eval`, `tune`, `rank`, `score` (and explain), `frames`, `videos`.
"""
