"""torchvision's classifiers, with their Weights API and the torch hub cache.

The model is built on the meta device and takes the checkpoint's memory-mapped tensors, so the
weights exist once. Because torchvision's builder does not load them, this module does the parts
of its loading that matter: googlenet/inception_v3's input transform and auxiliary heads,
densenet's old key names, and the checkpoint's own version metadata (kept by ``files``).
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ModelLoadError
from .base import IMAGENET_MEAN, IMAGENET_STD, LoadedModel
from .catalogue import TorchvisionModel
from .files import apply_state_dict, head_size, load_checkpoint, load_state_dict

__all__ = ["load_torchvision"]

#: densenet checkpoints name some layers 'norm.1' (torchvision renames them when it loads them)
_DENSENET_OLD_KEY = re.compile(
    r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
#: what torchvision's googlenet and inception_v3 builders set when they load its weights
_PRETRAINED_KWARGS = {"transform_input": True, "aux_logits": True, "init_weights": False}


def _hub_checkpoint(name: str, url: str) -> Path:
    """The torch hub cache file for ``url``, downloaded (and hash-checked) when missing: what
    ``torch.hub.load_state_dict_from_url`` does, short of loading it."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    file = folder / Path(urllib.parse.urlparse(url).path).name
    if file.exists():
        return file
    try:
        folder.mkdir(parents=True, exist_ok=True)
        match = torch.hub.HASH_REGEX.search(file.name)
        torch.hub.download_url_to_file(url, str(file), match.group(1) if match else None)
    except Exception as exc:
        raise ModelLoadError(
            f"{name}: cannot download the DEFAULT weights ({type(exc).__name__}: "
            f"{str(exc)[:120]}); put {file.name} (from {url}) into {folder}, or pass a weights "
            "file with --weights PATH, or --weights none for random weights"
        ) from exc
    return file


def _build(name: str, state: dict[str, torch.Tensor], source: str, **kwargs: Any) -> nn.Module:
    """``name`` with ``state`` as its weights. The model is built on the meta device where its
    builder allows and takes the state's tensors as they are, so the weights are in memory
    once, not twice."""
    import torchvision

    if name.startswith("densenet"):
        for key in list(state):
            old = _DENSENET_OLD_KEY.match(key)
            if old:
                state[old.group(1) + old.group(2)] = state.pop(key)
    try:
        with torch.device("meta"):
            model = torchvision.models.get_model(name, weights=None, **kwargs)
    except NotImplementedError:
        # Builders that compute with tensors (RegNet's block widths) need real ones: build on
        # the CPU; its random weights are freed when the state's tensors replace them.
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    apply_state_dict(model, state, name, source)
    return model


def _pretrained(entry: TorchvisionModel, checkpoint: Path, default: Any) -> LoadedModel:
    """The model with torchvision's DEFAULT weights from ``checkpoint``, as torchvision builds it."""
    name = entry.name
    pretrained = _PRETRAINED_KWARGS if name in ("googlenet", "inception_v3") else {}
    model = _build(name, load_state_dict(checkpoint), str(checkpoint), **pretrained)
    if pretrained:  # as torchvision's builders do: the auxiliary heads are not trained
        model.aux_logits = False  # type: ignore[assignment]
        for head in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, head):
                setattr(model, head, None)
    transforms = default.transforms()
    metadata = {
        "classes": list(default.meta["categories"]),
        "mean": list(transforms.mean),
        "std": list(transforms.std),
        "weights": str(default),
    }
    return LoadedModel(name, model.eval(), (entry.size, entry.size), str(default), metadata)


def load_torchvision(
    entry: TorchvisionModel, weights: str, num_classes: int | None = None
) -> LoadedModel:
    """``entry``'s model with ``weights``: "DEFAULT" (torch hub cache, downloaded when missing),
    "none" (torchvision's random initialisation) or a state-dict file. A file named like the
    DEFAULT checkpoint (e.g. ``vgg16-397923af.pth``) is taken as that checkpoint, class names
    and all. A fine-tuned file gets a model with its number of classes (read from the file, or
    ``num_classes``) and the class names saved in it, if any."""
    import torchvision

    name = entry.name
    default = torchvision.models.get_model_weights(name).DEFAULT
    official = weights.lower() != "none" and Path(weights).name == entry.checkpoint
    if weights.upper() == "DEFAULT" or (official and num_classes in (None, 1000)):
        if num_classes not in (None, 1000):
            raise ModelLoadError(
                f"{name}: the DEFAULT weights have 1000 classes, not {num_classes}; pass your "
                "own weights file with --weights"
            )
        file = _hub_checkpoint(name, default.url) if not official else Path(weights)
        return _pretrained(entry, file, default)
    builder_kwargs: dict[str, Any] = {}
    if name in ("googlenet", "inception_v3"):
        builder_kwargs["init_weights"] = False
    if name == "inception_v3":
        builder_kwargs["aux_logits"] = True
    metadata: dict[str, Any] = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    size = (entry.size, entry.size)
    if weights.lower() == "none":
        if num_classes:
            builder_kwargs["num_classes"] = num_classes
        model = torchvision.models.get_model(name, weights=None, **builder_kwargs)
        return LoadedModel(name, model.eval(), size, "none (random)", metadata)
    checkpoint = load_checkpoint(weights)
    if num_classes is None:
        with torch.device("meta"):
            try:
                stock = torchvision.models.get_model(name, weights=None, **builder_kwargs)
            except NotImplementedError:
                stock = None
        if stock is not None:
            found = head_size(checkpoint.state, stock.state_dict())
            num_classes = found if found != 1000 else None
    if num_classes:
        builder_kwargs["num_classes"] = num_classes
    model = _build(name, checkpoint.state, weights, **builder_kwargs)
    if checkpoint.classes:
        metadata["classes"] = checkpoint.classes
    return LoadedModel(name, model.eval(), size, str(weights), metadata)
