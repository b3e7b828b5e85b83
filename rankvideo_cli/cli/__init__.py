"""The `rankvideo` command line: parse options, call the library, print. No logic lives here: one module per
command family (`rerank`, `evaluate`, `videos`, `merge`, `report`), what they share in `params`, the group's
one-line errors and 80-column help in `group`."""

from rankvideo_cli.cli.app import app, main

__all__ = ["app", "main"]
