"""How a tensor of the traced classifier is laid out, and what it becomes after conversion.

The planner gives every node of the graph a layout:

- ``Trunk``: left as it is (the convolutional trunk, gates, anything before the classifier);
  ``order`` says whether a 4-D trunk tensor is known to be NCHW or NHWC.
- ``Flat``: a row-major flatten of an NCHW map of C×H×W (original N×CHW); converted: the map.
- ``Vec``: a per-image feature vector (original N×F); converted: N×F×rows×cols.
- ``Map``: a pooled map (original N×C×1×1); converted: N×C×rows×cols.
- ``ChannelsLastMap``: a pooled map, channels last (original N×1×1×C); converted: N×rows×cols×C.
- ``Squeezed``: a pooled map with one of its 1×1 axes squeezed away (original N×C×1).
- ``NotTensor``: a shape, a number, anything that is not a tensor.

Every layout but ``Trunk`` and ``NotTensor`` is on the *classifier path*: a tensor there holds
one value per image in the original and one value per cell after conversion.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Trunk:
    order: str | None = None


@dataclass(frozen=True)
class Flat:
    channels: int
    height: int
    width: int


@dataclass(frozen=True)
class Vec:
    pass


@dataclass(frozen=True)
class Map:
    pass


@dataclass(frozen=True)
class ChannelsLastMap:
    pass


@dataclass(frozen=True)
class Squeezed:
    pass


@dataclass(frozen=True)
class NotTensor:
    pass


Layout = Trunk | Flat | Vec | Map | ChannelsLastMap | Squeezed | NotTensor
CLASSIFIER_LAYOUTS = (Flat, Vec, Map, ChannelsLastMap, Squeezed)


def on_classifier_path(layout: Layout | None) -> bool:
    """True for the layouts of the classifier's features (one value per image, then per cell)."""
    return isinstance(layout, CLASSIFIER_LAYOUTS)
