"""The bundled ``shapes`` classifier with its shipped weights (see :mod:`fc2conv.shapes`)."""

from __future__ import annotations

from ..errors import ModelLoadError
from ..shapes.net import ShapesNet
from ..shapes.spec import BOX_FRACTION, CLASSES, INPUT_SIZE, MEAN, STD, WEIGHTS
from .base import LoadedModel
from .files import load_state_dict

__all__ = ["load_shapes"]


def load_shapes(weights: str = "DEFAULT") -> LoadedModel:
    """The bundled classifier: "DEFAULT" (the shipped weights), "none" (random) or a file."""
    from safetensors.torch import load_file

    model = ShapesNet()
    if weights.upper() == "DEFAULT":
        if not WEIGHTS.is_file():
            raise ModelLoadError(
                f"the bundled weights {WEIGHTS} are missing; reinstall fc2conv, or train them "
                f"with python -m fc2conv.shapes --out {WEIGHTS}"
            )
        state = load_file(str(WEIGHTS))
    elif weights.lower() == "none":
        state = None
    else:
        state = load_state_dict(weights)
    if state is not None:
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ModelLoadError(f"weights {weights} are not for shapes: {str(exc)[:300]}") from exc
    metadata = {
        "classes": CLASSES,
        "mean": MEAN,
        "std": STD,
        "box_fraction": BOX_FRACTION,
        "background": 0,
    }
    source = "bundled" if weights.upper() == "DEFAULT" else weights
    return LoadedModel("shapes", model.eval(), (INPUT_SIZE, INPUT_SIZE), source, metadata)
