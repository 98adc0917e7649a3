"""How a tensor of the traced classifier is laid out, and what it becomes after conversion.

The planner gives every node of the graph a layout:

- ``Trunk``: left as it is (the convolutional trunk, gates, anything before the classifier);
  ``order`` says how a 4-D trunk tensor's axes relate to the NCHW map it holds: the tensor is
  that map permuted by ``order`` ((0, 1, 2, 3) for NCHW, (0, 2, 3, 1) for NHWC), or None when
  unknown.
- ``Flat``: a row-major flatten of a map of C×H×W (original N×CHW) whose axes were in the order
  ``axes`` (of 1, 2, 3 for C, H, W) when it was flattened, possibly scaled and shifted per
  feature (``affine``); converted: the NCHW map.
- ``PartlyPooled``: a map reduced over one spatial axis only (original N×C×H or N×C×W, or with
  that axis kept as 1); converted: N×C×rows×cols, the other axis still to pool.
- ``Vec``: a per-image feature vector (original N×F); converted: N×F×rows×cols.
- ``Map``: a pooled map (original N×C×1×1); converted: N×C×rows×cols.
- ``ChannelsLastMap``: a pooled map, channels last (original N×1×1×C); converted: N×rows×cols×C.
- ``Squeezed``: a pooled map with one of its 1×1 axes squeezed away (original N×C×1).
- ``NotTensor``: a shape, a number, anything that is not a tensor.

Every layout but ``Trunk`` and ``NotTensor`` is on the *classifier path*: a tensor there holds
one value per image in the original and one value per cell after conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: the axis order of an NCHW tensor
NCHW = (0, 1, 2, 3)


@dataclass(frozen=True)
class Trunk:
    order: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Flat:
    channels: int
    height: int
    width: int
    axes: tuple[int, ...] = (1, 2, 3)
    #: per-feature affine maps applied to the flattened features, to fold into the next Linear
    #: (see :mod:`.rules.flat_affine`)
    affine: tuple[Any, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class PartlyPooled:
    remaining: int  #: the spatial axis still to pool: 2 (height) or 3 (width), in NCHW terms
    rank: int  #: 3 when the pooled axis was dropped, 4 when it was kept as size 1


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


Layout = Trunk | Flat | PartlyPooled | Vec | Map | ChannelsLastMap | Squeezed | NotTensor
CLASSIFIER_LAYOUTS = (Flat, PartlyPooled, Vec, Map, ChannelsLastMap, Squeezed)


def inverse(order: tuple[int, ...]) -> tuple[int, ...]:
    """The permutation that undoes ``order``."""
    return tuple(order.index(axis) for axis in range(len(order)))


def on_classifier_path(layout: Layout | None) -> bool:
    """True for the layouts of the classifier's features (one value per image, then per cell)."""
    return isinstance(layout, CLASSIFIER_LAYOUTS)
