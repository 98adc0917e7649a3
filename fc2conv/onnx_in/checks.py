"""The proof for a converted ONNX classifier, in onnxruntime only: at the canonical size the
converted model's one cell equals the original's output; at further sizes (non-square, off the
stride grid) it gives the map the geometry predicts, finite, and where it ends in a softmax each
cell's probabilities sum to one; and onnx.checker accepts the file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compare import relative_error
from ..errors import ExportError
from ..export.onnx_file import check_map_size, checked_session
from ..geometry import Geometry, check_sizes
from ..runtime import open_session
from .graph import ImageInput

__all__ = ["OnnxCheck", "check_converted"]

#: how far a softmax cell's sum may be from one (float32 sums of up to a few thousand terms)
SUM_TOLERANCE = 1e-4


@dataclass(frozen=True)
class OnnxCheck:
    """One input size: the map it gave, and the relative error against the original (at the
    canonical size; None at the others, where there is no original to compare with)."""

    height: int
    width: int
    map_size: tuple[int, int]
    relative_error: float | None


def check_converted(
    original: str | bytes,
    converted: Path,
    image: ImageInput,
    geometry: Geometry,
    outputs: list[dict[str, Any]],
    rtol: float,
    name: str,
    say: Callable[[str], None] = lambda detail: None,
) -> list[OnnxCheck]:
    """Run the checks of the module docstring; raise ExportError on the first that fails."""
    session = checked_session(converted, name, say)
    rng = np.random.default_rng(0)
    batch = image.fixed_batch if image.fixed_batch and image.fixed_batch > 1 else 2
    results = []
    for height, width in check_sizes(geometry):
        say(f"checking in onnxruntime at {height}x{width}")
        images = rng.standard_normal((batch, image.channels, height, width)).astype(np.float32)
        maps = session.run(None, {session.get_inputs()[0].name: images})
        want = check_map_size(maps, geometry, height, width, name)
        for output in maps:
            if not np.isfinite(output).all():
                raise ExportError(f"{name}: at {height}x{width} the map holds NaN or infinity")
        for output, info in zip(maps, outputs, strict=True):
            if info["ending"] == "softmax":
                drift = float(np.abs(output.sum(axis=1, dtype=np.float64) - 1).max())
                if drift > SUM_TOLERANCE:
                    raise ExportError(
                        f"{name}: at {height}x{width} a cell's softmax sums to 1 ± {drift:.1e}"
                    )
        error = None
        if (height, width) == geometry.canonical_size:
            expected = run_original(original, image, images, [o["name"] for o in outputs])
            error = max(
                relative_error(want_output, got.reshape(want_output.shape))
                for want_output, got in zip(expected, maps, strict=True)
            )
            if not error <= rtol:
                raise ExportError(
                    f"{name}: at {height}x{width} the converted model differs from the original: "
                    f"relative error {error:.2e} > {rtol:.1e}"
                )
        results.append(OnnxCheck(height, width, want, error))
    return results


def run_original(
    original: str | bytes, image: ImageInput, images: np.ndarray, names: list[str]
) -> list[Any]:
    """The original model's outputs ``names`` for ``images`` (N×C×H×W), one image at a time
    where the file fixes its batch size, in its own layout."""
    session = open_session(original, optimization="basic", memory_arena=False)
    feed = images.transpose(0, 2, 3, 1) if image.channels_last else images
    if image.fixed_batch != 1:
        return list(session.run(names, {image.name: np.ascontiguousarray(feed)}))
    singles = [session.run(names, {image.name: feed[i : i + 1]}) for i in range(len(feed))]
    return [np.concatenate(parts) for parts in zip(*singles, strict=True)]
