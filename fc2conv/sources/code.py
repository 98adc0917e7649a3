"""A classifier defined in your own code, named by an import string as uvicorn and gunicorn
take them: ``package.module:attribute``. The attribute is an ``nn.Module`` instance, or a class or
factory that is called with the ``--model-arg key=value`` arguments (none by default) and returns
one. The current folder is importable, as for ``python -m``.

``--weights DEFAULT`` keeps the weights the factory gave the model; a state-dict file replaces
them (the factory must build the head the file holds: ``--num-classes N`` is passed to it as
``num_classes``, or give any argument with ``--model-arg``). The source knows neither the
canonical size nor the preprocessing: ``--input-size`` is needed, ``--mean``/``--std`` say how
images are normalised.
"""

from __future__ import annotations

import importlib
import operator
import os
import sys
from typing import Any

from torch import nn

from ..errors import ModelLoadError
from .base import LoadedModel
from .files import apply_state_dict, load_checkpoint

__all__ = ["load_code"]


def _import(spec: str) -> Any:
    module_name, attribute = spec.split(":", 1)
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if module_name == missing or module_name.startswith(missing + "."):
            raise ModelLoadError(
                f"{spec}: no module named {missing}; run fc2conv from the folder that holds it, "
                "or install its package"
            ) from exc
        raise ModelLoadError(f"{spec}: importing {module_name} failed: {exc}") from exc
    except Exception as exc:
        raise ModelLoadError(
            f"{spec}: importing {module_name} failed: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return operator.attrgetter(attribute)(module)
    except AttributeError as exc:
        raise ModelLoadError(f"{spec}: module {module_name} has no attribute {attribute}") from exc


def _build(spec: str, target: Any, args: dict[str, Any]) -> nn.Module:
    if isinstance(target, nn.Module):
        if args:
            raise ModelLoadError(f"{spec} is a model already; --model-arg is for a factory")
        return target
    if not callable(target):
        raise ModelLoadError(
            f"{spec} is a {type(target).__name__}, not a model, a model class or a factory"
        )
    try:
        model = target(**args)
    except TypeError as exc:
        raise ModelLoadError(
            f"{spec}({', '.join(f'{k}={v!r}' for k, v in args.items())}) failed: {exc}; pass "
            "its arguments with --model-arg key=value"
        ) from exc
    if not isinstance(model, nn.Module):
        raise ModelLoadError(f"{spec} returned a {type(model).__name__}, not a torch.nn.Module")
    return model


def load_code(
    spec: str,
    weights: str = "DEFAULT",
    num_classes: int | None = None,
    model_args: dict[str, Any] | None = None,
) -> LoadedModel:
    """The model that ``spec`` (``module:attribute``) names, built with ``model_args`` (and
    ``num_classes``, or the head size of a weights file, where given), with ``weights``:
    "DEFAULT" (as built), "none" (as built: the factory decides) or a state-dict file."""
    target = _import(spec)
    args = dict(model_args or {})
    checkpoint = None
    if weights.upper() != "DEFAULT" and weights.lower() != "none":
        checkpoint = load_checkpoint(weights)
    if num_classes is not None:
        args.setdefault("num_classes", num_classes)
    model = _build(spec, target, args)
    metadata: dict[str, Any] = {"weights": weights}
    if checkpoint is not None:
        apply_state_dict(model, checkpoint.state, spec, weights)
        if checkpoint.classes:
            metadata["classes"] = checkpoint.classes
    return LoadedModel(spec, model.eval(), None, weights, metadata)
