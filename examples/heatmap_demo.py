"""Heatmaps and detections from a converted classifier, exported to ONNX and run in onnxruntime.

    python examples/heatmap_demo.py                      # offline: the bundled shapes classifier
    python examples/heatmap_demo.py --model vgg16 --image photo.jpg   # an ImageNet model

Writes into --out (default demo_out/): scene.png (the input), model.onnx, heatmaps.png (per-class
maps overlaid on the image), detections.png and detections.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

import fc2conv
from fc2conv.run import Runner, load_image
from fc2conv.run.render import save_detections, save_heatmaps
from fc2conv.shapes.scenes import draw_scene
from fc2conv.shapes.spec import CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="shapes", help="shapes, or a torchvision model name")
    parser.add_argument("--weights", default="DEFAULT", help="DEFAULT, none, or a state-dict file")
    parser.add_argument("--image", type=Path, help="image to use (default: a generated scene)")
    parser.add_argument("--seed", type=int, default=9, help="seed of the generated scene")
    parser.add_argument("--out", type=Path, default=Path("demo_out"))
    args = parser.parse_args()
    if args.image is None and args.model != "shapes":
        parser.error("--image is needed with an ImageNet model; the generated scene is for shapes")
    args.out.mkdir(parents=True, exist_ok=True)

    scene = None
    if args.image is None:
        scene = draw_scene(args.seed)
        Image.fromarray(scene.image).save(args.out / "scene.png")
        pixels = load_image(scene.image)
    else:
        pixels = load_image(args.image)
        Image.fromarray((pixels * 255).astype(np.uint8)).save(args.out / "scene.png")

    onnx_path = args.out / "model.onnx"
    report = fc2conv.export_model(args.model, onnx_path, weights=args.weights, force=True)
    print(f"exported {onnx_path} ({report.bytes / 1e6:.1f} MB); geometry: {report.geometry}")

    runner = Runner.from_onnx(onnx_path)  # everything below runs in onnxruntime
    maps = fc2conv.heatmap(runner, pixels)  # over the image pyramid (default scales)
    shown = CLASSES[1:] if args.model == "shapes" else maps.top_classes(4)
    save_heatmaps(pixels, maps, args.out / "heatmaps.png", shown)
    found = fc2conv.detect(runner, pixels)
    save_detections(pixels, found, args.out / "detections.png")
    (args.out / "detections.json").write_text(found.to_json())
    scales = ", ".join(f"{scale:.2g}" for scale in maps.scales)
    print(f"heatmap of {pixels.shape[0]}x{pixels.shape[1]} pixels at scales {scales}")
    for name in shown:
        peak = maps.peak(name)
        print(f"  {name:>10} peak {peak.score:.2f} at scale {peak.scale:.2g}")
    for item in found.as_list():
        print(f"  {item['class']:>10} {item['score']:.2f}  box {item['box']}")
    if scene is not None:
        truth = ", ".join(CLASSES[label] for label in scene.labels)
        print(f"the scene holds: {truth}")
    print(f"pictures in {args.out}/: scene.png, heatmaps.png, detections.png")


if __name__ == "__main__":
    main()
