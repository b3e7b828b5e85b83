"""One device worker of `rerank --devices`: the shard's rerank job its parent (`jobs/devices.py`) started it for.

The parent names this module in the command line it spawns (`python -m rankvideo_cli.jobs.worker JOB`); a
worker runs the job (`jobs.rerank.run_rerank`), never a command.
"""

from __future__ import annotations

import json
import sys

from rich.console import Console

from rankvideo_cli.errors import RankVideoError
from rankvideo_cli.jobs.request import RerankJob
from rankvideo_cli.messages import say


def main(argv: list[str] | None = None) -> int:
    """A worker: `python -m rankvideo_cli.jobs.worker JOB` (JOB: the shard's `RerankJob.to_dict()`, as JSON)."""
    from rankvideo_cli.jobs.rerank import run_rerank

    arguments = sys.argv[1:] if argv is None else argv
    console = Console(stderr=True, highlight=False)
    try:
        run_rerank(RerankJob.from_dict(json.loads(arguments[0])), console)
    except RankVideoError as error:
        say(console, str(error))
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
