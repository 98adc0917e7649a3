"""Small random Hugging Face image classifiers, one per CNN-style class of the installed
transformers, saved as checkpoint folders (config, weights, image-processor configuration) as
``save_pretrained`` writes them (used by ``tests/test_hf.py`` and ``benchmarks/hf_classes.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from helpers import calibrate

SIZE = 64  #: the canonical input the checkpoints' image processors name
LABELS = {0: "cat", 1: "dog", 2: "cup"}


def _configs(transformers: Any) -> dict[str, Callable[[], Any]]:
    stages = {"hidden_sizes": [8, 16, 16, 32], "depths": [1, 1, 1, 1]}
    tokens = {
        "image_size": SIZE, "patch_size": 16, "hidden_size": 16, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16,
    }  # fmt: skip
    return {
        "ResNet": lambda: transformers.ResNetConfig(embedding_size=8, **stages),
        "RegNet": lambda: transformers.RegNetConfig(embedding_size=8, groups_width=8, **stages),
        "ConvNext": lambda: transformers.ConvNextConfig(**stages),
        "ConvNextV2": lambda: transformers.ConvNextV2Config(**stages),
        "MobileNetV1": lambda: transformers.MobileNetV1Config(depth_multiplier=0.25),
        "MobileNetV2": lambda: transformers.MobileNetV2Config(depth_multiplier=0.35),
        "EfficientNet": lambda: transformers.EfficientNetConfig(
            width_coefficient=0.1, depth_coefficient=0.1, hidden_dim=128, image_size=SIZE
        ),
        "PoolFormer": lambda: transformers.PoolFormerConfig(**stages),
        "BitForImage": lambda: transformers.BitConfig(
            embedding_size=32, hidden_sizes=[128, 128, 256, 256], depths=[1, 1, 1, 1]
        ),
        "Swin": lambda: transformers.SwinConfig(
            image_size=SIZE, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4
        ),
        "Swinv2": lambda: transformers.Swinv2Config(
            image_size=SIZE, embed_dim=8, depths=[1, 1], num_heads=[1, 2], window_size=4
        ),
        "ViT": lambda: transformers.ViTConfig(**tokens),
        "DeiT": lambda: transformers.DeiTConfig(**tokens),
    }


def classes() -> list[str]:
    """The HF classes this transformers has, by their name before ``ForImageClassification``."""
    import transformers

    return [
        name
        for name in _configs(transformers)
        if hasattr(transformers, f"{name.removesuffix('ForImage')}ForImageClassification")
        or hasattr(transformers, f"{name}Classification")
    ]


def model_class(transformers: Any, name: str) -> Any:
    return getattr(
        transformers, f"{name.removesuffix('ForImage')}ForImageClassification", None
    ) or getattr(transformers, f"{name}Classification")


def save_checkpoint(name: str, folder: Path) -> Path:
    """A random ``name`` classifier of three classes, weights calibrated to outputs of order
    one, saved with an image processor of SIZE×SIZE and mean/std 0.5 into ``folder``."""
    import transformers

    config = _configs(transformers)[name]()
    config.num_labels = len(LABELS)
    config.id2label = dict(LABELS)
    config.label2id = {label: index for index, label in LABELS.items()}
    model = calibrate(model_class(transformers, name)(config), (SIZE, SIZE))
    model.save_pretrained(folder)
    processor = transformers.ViTImageProcessor(
        size={"height": SIZE, "width": SIZE}, image_mean=[0.5] * 3, image_std=[0.5] * 3
    )
    processor.save_pretrained(folder)
    return folder
