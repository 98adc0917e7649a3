"""What each tensor of an ONNX classifier holds, as the planner sees it (the ONNX counterpart of
:mod:`fc2conv.conversion.layouts`; the names mean the same in both paths):

- ``Trunk``: a tensor of the convolutional trunk, kept as it is. ``roles`` names each axis:
  batch ``"N"``, rows ``"H"``, columns ``"W"``, anything else ``None`` (channels); ``roles`` is
  None where the axes are not known (a squeeze-and-excitation gate's per-image values, kept).
- ``Flat``: a feature map flattened to N×features (not built): the linear layer that reads it
  becomes a convolution whose kernel covers the map.
- ``Vec``: a per-image feature vector (N×F, N×F×1×1, or N×1×1×F with ``axis`` 3); converted, it
  is an N×F×rows×cols map with one vector per window, under the same tensor name.

Tensors with no kind are constants and shape computations.
"""

from __future__ import annotations

from dataclasses import dataclass

Roles = tuple[str | None, ...]
#: the roles of an N×C×H×W tensor
NCHW: Roles = ("N", None, "H", "W")


@dataclass(frozen=True)
class Trunk:
    roles: Roles | None


@dataclass(frozen=True)
class Flat:
    source: str  #: the map that was flattened (a tensor of both graphs)
    roles: Roles  #: its axes' roles, in the flatten's order
    dims: tuple[int, ...]  #: its canonical shape

    @property
    def one_cell(self) -> bool:
        """A flattened map of one cell at the canonical size: one vector per image already."""
        return (self.dims[self.roles.index("H")], self.dims[self.roles.index("W")]) == (1, 1)


@dataclass(frozen=True)
class Vec:
    rank: int  #: the original's rank (2: N×F, 4: N×F×1×1 or N×1×1×F)
    axis: int = 1  #: the original's feature axis


Kind = Trunk | Flat | Vec


def on_classifier_path(kind: Kind | None) -> bool:
    """True for the kinds that hold one value per image in the original, one per cell after."""
    return isinstance(kind, (Flat, Vec))


def roles_text(roles: Roles) -> str:
    """``("N", None, "H", "W")`` as ``NCHW``."""
    return "".join(role or "C" for role in roles)
