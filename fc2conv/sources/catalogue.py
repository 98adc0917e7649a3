"""torchvision's classifiers, as data: names, canonical sizes, checkpoint files, and what stops
the ones fc2conv does not export.

Listing models (``fc2conv list``) and telling whether a checkpoint is in the torch hub cache need
neither PyTorch nor torchvision: this table is enough. ``tests/test_catalogue.py`` compares it
with torchvision's own registry and Weights API, so it cannot drift from the installed version.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["TORCHVISION_MODELS", "TorchvisionModel", "hub_checkpoints", "natural_key"]

TOKEN_HEAD = (
    "its head reads the class token of a transformer's sequence, not a convolutional feature map"
)
FIXED_GRID = (
    "its attention partitions the image into a fixed grid, so it only runs at certain sizes"
)
NO_DYNAMIC_EXPORT = (
    "torch.onnx bakes its shifted-window padding for the example size, so the exported model is "
    "wrong at other sizes"
)


@dataclass(frozen=True)
class TorchvisionModel:
    name: str
    size: int  #: canonical input size (square), from the DEFAULT weights' transforms
    checkpoint: str  #: file name of the DEFAULT weights in the torch hub cache
    refused: str | None = None  #: why fc2conv does not export it, or None


TORCHVISION_MODELS: tuple[TorchvisionModel, ...] = (
    TorchvisionModel("alexnet", 224, "alexnet-owt-7be5be79.pth"),
    TorchvisionModel("convnext_base", 224, "convnext_base-6075fbad.pth"),
    TorchvisionModel("convnext_large", 224, "convnext_large-ea097f82.pth"),
    TorchvisionModel("convnext_small", 224, "convnext_small-0c510722.pth"),
    TorchvisionModel("convnext_tiny", 224, "convnext_tiny-983f1562.pth"),
    TorchvisionModel("densenet121", 224, "densenet121-a639ec97.pth"),
    TorchvisionModel("densenet161", 224, "densenet161-8d451a50.pth"),
    TorchvisionModel("densenet169", 224, "densenet169-b2777c0a.pth"),
    TorchvisionModel("densenet201", 224, "densenet201-c1103571.pth"),
    TorchvisionModel("efficientnet_b0", 224, "efficientnet_b0_rwightman-7f5810bc.pth"),
    TorchvisionModel("efficientnet_b1", 240, "efficientnet_b1-c27df63c.pth"),
    TorchvisionModel("efficientnet_b2", 288, "efficientnet_b2_rwightman-c35c1473.pth"),
    TorchvisionModel("efficientnet_b3", 300, "efficientnet_b3_rwightman-b3899882.pth"),
    TorchvisionModel("efficientnet_b4", 380, "efficientnet_b4_rwightman-23ab8bcd.pth"),
    TorchvisionModel("efficientnet_b5", 456, "efficientnet_b5_lukemelas-1a07897c.pth"),
    TorchvisionModel("efficientnet_b6", 528, "efficientnet_b6_lukemelas-24a108a5.pth"),
    TorchvisionModel("efficientnet_b7", 600, "efficientnet_b7_lukemelas-c5b4e57e.pth"),
    TorchvisionModel("efficientnet_v2_l", 480, "efficientnet_v2_l-59c71312.pth"),
    TorchvisionModel("efficientnet_v2_m", 480, "efficientnet_v2_m-dc08266a.pth"),
    TorchvisionModel("efficientnet_v2_s", 384, "efficientnet_v2_s-dd5fe13b.pth"),
    TorchvisionModel("googlenet", 224, "googlenet-1378be20.pth"),
    TorchvisionModel("inception_v3", 299, "inception_v3_google-0cc3c7bd.pth"),
    TorchvisionModel("maxvit_t", 224, "maxvit_t-bc5ab103.pth", FIXED_GRID),
    TorchvisionModel("mnasnet0_5", 224, "mnasnet0.5_top1_67.823-3ffadce67e.pth"),
    TorchvisionModel("mnasnet0_75", 224, "mnasnet0_75-7090bc5f.pth"),
    TorchvisionModel("mnasnet1_0", 224, "mnasnet1.0_top1_73.512-f206786ef8.pth"),
    TorchvisionModel("mnasnet1_3", 224, "mnasnet1_3-a4c69d6f.pth"),
    TorchvisionModel("mobilenet_v2", 224, "mobilenet_v2-7ebf99e0.pth"),
    TorchvisionModel("mobilenet_v3_large", 224, "mobilenet_v3_large-5c1a4163.pth"),
    TorchvisionModel("mobilenet_v3_small", 224, "mobilenet_v3_small-047dcff4.pth"),
    TorchvisionModel("regnet_x_16gf", 224, "regnet_x_16gf-ba3796d7.pth"),
    TorchvisionModel("regnet_x_1_6gf", 224, "regnet_x_1_6gf-a12f2b72.pth"),
    TorchvisionModel("regnet_x_32gf", 224, "regnet_x_32gf-6eb8fdc6.pth"),
    TorchvisionModel("regnet_x_3_2gf", 224, "regnet_x_3_2gf-7071aa85.pth"),
    TorchvisionModel("regnet_x_400mf", 224, "regnet_x_400mf-62229a5f.pth"),
    TorchvisionModel("regnet_x_800mf", 224, "regnet_x_800mf-94a99ebd.pth"),
    TorchvisionModel("regnet_x_8gf", 224, "regnet_x_8gf-2b70d774.pth"),
    TorchvisionModel("regnet_y_128gf", 384, "regnet_y_128gf_swag-c8ce3e52.pth"),
    TorchvisionModel("regnet_y_16gf", 224, "regnet_y_16gf-3e4a00f9.pth"),
    TorchvisionModel("regnet_y_1_6gf", 224, "regnet_y_1_6gf-0d7bc02a.pth"),
    TorchvisionModel("regnet_y_32gf", 224, "regnet_y_32gf-8db6d4b5.pth"),
    TorchvisionModel("regnet_y_3_2gf", 224, "regnet_y_3_2gf-9180c971.pth"),
    TorchvisionModel("regnet_y_400mf", 224, "regnet_y_400mf-e6988f5f.pth"),
    TorchvisionModel("regnet_y_800mf", 224, "regnet_y_800mf-58fc7688.pth"),
    TorchvisionModel("regnet_y_8gf", 224, "regnet_y_8gf-dc2b1b54.pth"),
    TorchvisionModel("resnet101", 224, "resnet101-cd907fc2.pth"),
    TorchvisionModel("resnet152", 224, "resnet152-f82ba261.pth"),
    TorchvisionModel("resnet18", 224, "resnet18-f37072fd.pth"),
    TorchvisionModel("resnet34", 224, "resnet34-b627a593.pth"),
    TorchvisionModel("resnet50", 224, "resnet50-11ad3fa6.pth"),
    TorchvisionModel("resnext101_32x8d", 224, "resnext101_32x8d-110c445d.pth"),
    TorchvisionModel("resnext101_64x4d", 224, "resnext101_64x4d-173b62eb.pth"),
    TorchvisionModel("resnext50_32x4d", 224, "resnext50_32x4d-1a0047aa.pth"),
    TorchvisionModel("shufflenet_v2_x0_5", 224, "shufflenetv2_x0.5-f707e7126e.pth"),
    TorchvisionModel("shufflenet_v2_x1_0", 224, "shufflenetv2_x1-5666bf0f80.pth"),
    TorchvisionModel("shufflenet_v2_x1_5", 224, "shufflenetv2_x1_5-3c479a10.pth"),
    TorchvisionModel("shufflenet_v2_x2_0", 224, "shufflenetv2_x2_0-8be3c8ee.pth"),
    TorchvisionModel("squeezenet1_0", 224, "squeezenet1_0-b66bff10.pth"),
    TorchvisionModel("squeezenet1_1", 224, "squeezenet1_1-b8a52dc0.pth"),
    TorchvisionModel("swin_b", 224, "swin_b-68c6b09e.pth", NO_DYNAMIC_EXPORT),
    TorchvisionModel("swin_s", 224, "swin_s-5e29d889.pth", NO_DYNAMIC_EXPORT),
    TorchvisionModel("swin_t", 224, "swin_t-704ceda3.pth", NO_DYNAMIC_EXPORT),
    TorchvisionModel("swin_v2_b", 256, "swin_v2_b-781e5279.pth", NO_DYNAMIC_EXPORT),
    TorchvisionModel("swin_v2_s", 256, "swin_v2_s-637d8ceb.pth", NO_DYNAMIC_EXPORT),
    TorchvisionModel("swin_v2_t", 256, "swin_v2_t-b137f0e2.pth", NO_DYNAMIC_EXPORT),
    TorchvisionModel("vgg11", 224, "vgg11-8a719046.pth"),
    TorchvisionModel("vgg11_bn", 224, "vgg11_bn-6002323d.pth"),
    TorchvisionModel("vgg13", 224, "vgg13-19584684.pth"),
    TorchvisionModel("vgg13_bn", 224, "vgg13_bn-abd245e5.pth"),
    TorchvisionModel("vgg16", 224, "vgg16-397923af.pth"),
    TorchvisionModel("vgg16_bn", 224, "vgg16_bn-6c64b313.pth"),
    TorchvisionModel("vgg19", 224, "vgg19-dcbb9e9d.pth"),
    TorchvisionModel("vgg19_bn", 224, "vgg19_bn-c79401a0.pth"),
    TorchvisionModel("vit_b_16", 224, "vit_b_16-c867db91.pth", TOKEN_HEAD),
    TorchvisionModel("vit_b_32", 224, "vit_b_32-d86f8d99.pth", TOKEN_HEAD),
    TorchvisionModel("vit_h_14", 518, "vit_h_14_swag-80465313.pth", TOKEN_HEAD),
    TorchvisionModel("vit_l_16", 224, "vit_l_16-852ce7e3.pth", TOKEN_HEAD),
    TorchvisionModel("vit_l_32", 224, "vit_l_32-c7638314.pth", TOKEN_HEAD),
    TorchvisionModel("wide_resnet101_2", 224, "wide_resnet101_2-d733dc28.pth"),
    TorchvisionModel("wide_resnet50_2", 224, "wide_resnet50_2-9ba9bcbe.pth"),
)


def hub_checkpoints() -> Path:
    """The torch hub cache's checkpoint folder, found as ``torch.hub.get_dir()`` finds it."""
    home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch"
    )
    return Path(home).expanduser() / "hub" / "checkpoints"


def natural_key(name: str) -> list[object]:
    """Sort key that orders numbers by value: resnet18 < resnet34 < resnet101."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
