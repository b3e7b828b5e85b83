"""`python -m rankvideo_cli.cli`: the console script without installing it."""

from rankvideo_cli.cli.app import main

main()
