"""One device worker of `rerank --devices`: the shard run its parent (`pipeline/devices.py`) started it for.

The parent names this module in the command line it spawns (`python -m rankvideo_cli.commands.worker SPEC`);
nothing imports it, so the parent's package never imports the rerank command back.
"""

from __future__ import annotations

import json
import sys

from rich.console import Console

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.messages import say
from rankvideo_cli.pipeline.request import request_from_dict


def main(argv: list[str] | None = None) -> int:
    """A worker: `python -m rankvideo_cli.commands.worker SPEC` (SPEC: the shard's request and scorer options,
    JSON)."""
    from rankvideo_cli.commands.rerank import run_rerank
    from rankvideo_cli.scoring.options import ScorerOptions

    arguments = sys.argv[1:] if argv is None else argv
    spec = json.loads(arguments[0])
    request = request_from_dict(spec["request"])
    options = ScorerOptions.from_dict(spec["scorer"])
    console = Console(stderr=True, highlight=False)
    try:
        run_rerank(request, options.deferred, console)
    except RankVideoError as error:
        say(console, str(error))
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
