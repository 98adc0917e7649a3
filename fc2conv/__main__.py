"""``python -m fc2conv``: the command line (see :mod:`fc2conv.cli`)."""

from .cli import main

main()
