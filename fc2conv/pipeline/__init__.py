"""The pipeline: a model's name → loaded → converted → verified → exported → run. The stages
(:mod:`fc2conv.sources`, :mod:`fc2conv.conversion`, :mod:`fc2conv.equivalence`,
:mod:`fc2conv.export`, :mod:`fc2conv.run`) do one step each; this package strings them
together, and nothing below it imports it. No PyTorch at import time."""

from .command import run_command
from .export import export_model
from .inspect import inspect_model
from .open import open_model
from .prepared import Prepared, class_count, prepare, prepare_spec
from .spec import ModelSpec

__all__ = [
    "ModelSpec",
    "Prepared",
    "class_count",
    "export_model",
    "inspect_model",
    "open_model",
    "prepare",
    "prepare_spec",
    "run_command",
]
