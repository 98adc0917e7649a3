"""``python -m fc2conv.shapes``: train the bundled classifier (see :mod:`fc2conv.shapes.train`)."""

from .train import main

main()
