"""The bundled ``shapes`` classifier with its shipped weights (see :mod:`fc2conv.shapes`)."""

from __future__ import annotations

from ..errors import ModelLoadError
from ..shapes.net import ShapesNet
from ..shapes.spec import BOX_FRACTION, CLASSES, INPUT_SIZE, MEAN, STD, WEIGHTS
from .base import LoadedModel
from .files import load_state_dict

__all__ = ["load_shapes"]


def load_shapes(weights: str = "DEFAULT", num_classes: int | None = None) -> LoadedModel:
    """The bundled classifier: "DEFAULT" (the shipped weights), "none" (random) or a file;
    ``num_classes`` other than its six only with weights of your own."""
    from safetensors.torch import load_file

    if num_classes not in (None, len(CLASSES)) and weights.upper() == "DEFAULT":
        raise ModelLoadError(f"the bundled weights have {len(CLASSES)} classes, not {num_classes}")
    model = ShapesNet(num_classes or len(CLASSES))
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
        "classes": CLASSES if model.classifier[-1].out_features == len(CLASSES) else None,
        "mean": MEAN,
        "std": STD,
        "box_fraction": BOX_FRACTION,
        "background": 0,
    }
    source = "bundled" if weights.upper() == "DEFAULT" else weights
    return LoadedModel("shapes", model.eval(), (INPUT_SIZE, INPUT_SIZE), source, metadata)
