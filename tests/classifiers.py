"""Small PyTorch classifiers that more than one test file converts (no test module imports
another: they import these)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Flattening(nn.Module):
    """conv → ReLU → max pool → flatten of 6x4x4 (at 10x10) in one of five ``style`` spellings
    → ReLU → Linear."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.features = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(6 * 4 * 4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.style == "torch.flatten":
            x = torch.flatten(x, 1)
        elif self.style == "Tensor.flatten":
            x = x.flatten(1)
        elif self.style == "nn.Flatten":
            x = self.flatten(x)
        elif self.style == "view":
            x = x.view(x.size(0), -1)
        elif self.style == "reshape":
            x = x.reshape(x.shape[0], -1)
        return self.fc(torch.relu(x))


FLATTEN_STYLES = ["torch.flatten", "Tensor.flatten", "nn.Flatten", "view", "reshape"]


class PaddingFree(nn.Module):
    """A VGG-style classifier whose trunk has no padding: every cell of the converted model
    sees exactly one window of the image, with nothing from outside it."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.ReLU()
        )
        self.classifier = nn.Sequential(
            nn.Linear(8 * 5 * 3, 12), nn.ReLU(), nn.Dropout(), nn.Linear(12, 4)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class Trunk(nn.Module):
    """conv (padded) → ReLU → max pool; ``pooled`` adds a global average pool to N×8."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)


class NormHead(Trunk):
    """BatchNorm1d → Linear → GELU → LayerNorm → Linear → log-softmax on the pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(8)
        self.fc = nn.Linear(8, 6)
        self.ln = nn.LayerNorm(6)
        self.out = nn.Linear(6, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.ln(F.gelu(self.fc(self.bn(self.pooled(x)))))
        return F.log_softmax(self.out(x), dim=-1)


class TwoBranches(Trunk):
    """Two heads on the same features, summed; and a concatenation of avg and max pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Linear(16, 5)
        self.b = nn.Sequential(nn.Linear(16, 7), nn.ReLU(), nn.Linear(7, 5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x)
        both = torch.cat([features.mean((2, 3)), features.amax((2, 3))], dim=1)
        return self.a(both) + 0.5 * self.b(both)


class FeatureOperations(Trunk):
    """Operations along the features, as real heads spell them."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.fc = nn.Linear(8, 6)
        self.scale = nn.Parameter(torch.tensor(1.7))
        self.softmax = nn.Softmax(dim=1)
        self.log_softmax = nn.LogSoftmax(dim=-1)
        self.implicit = nn.Softmax()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pooled(x)
        if self.style == "normalize":
            x = F.normalize(x, dim=-1)
        elif self.style == "norm-division":
            x = x / x.norm(dim=1, keepdim=True)
        elif self.style == "vector-norm":
            x = x / torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        elif self.style == "slices":
            x = torch.cat([x[:, :4] * 2, x[..., 4:]], 1)
        elif self.style == "cat-scaled":
            x = torch.cat([x, 2 * x], 1)[:, :8]
        elif self.style == "learnable-scale":
            x = x * self.scale
        elif self.style == "mean-subtracted":
            x = x - x.mean(-1, keepdim=True)
        elif self.style == "unsqueeze":
            x = x.unsqueeze(-1).unsqueeze(-1).flatten(1)
        elif self.style == "none-axes":
            x = x[:, :, None, None].flatten(1)
        x = self.fc(x)
        if self.style in ("normalize", "slices"):
            return self.softmax(x)
        if self.style == "norm-division":
            return self.log_softmax(x)
        if self.style == "vector-norm":
            return self.implicit(x)
        return x


class Pooled(nn.Module):
    """A trunk without padding, so every cell is exactly the classifier on its window; the
    global pool in one of the :data:`POOLS` spellings, then a Linear (``head="mlp"``: Linear →
    Hardswish → Linear)."""

    def __init__(self, pool: str, head: str = "linear") -> None:
        super().__init__()
        self.pool, self.head = pool, head
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 12, 3)
        )
        self.adaptive = nn.AdaptiveAvgPool2d(1)
        self.adaptive_max = nn.AdaptiveMaxPool2d((1, 1))
        self.fc = nn.Linear(12, 6)
        self.act = nn.Hardswish()
        self.fc2 = nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.pool == "AdaptiveAvgPool2d":
            x = self.adaptive(x).flatten(1)
        elif self.pool == "AdaptiveMaxPool2d":
            x = self.adaptive_max(x).flatten(1)
        elif self.pool == "adaptive_avg_pool2d":
            x = F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1)
        elif self.pool == "mean":
            x = x.mean([2, 3])
        elif self.pool == "mean-keepdim":
            x = x.mean((-2, -1), keepdim=True).squeeze(-1).squeeze(-1)
        elif self.pool == "amax":
            x = torch.amax(x, dim=(2, 3))
        elif self.pool == "avg_pool2d":
            x = F.avg_pool2d(x, x.shape[2:]).flatten(1)
        elif self.pool == "mean-chain":
            x = x.mean(3).mean(2)
        elif self.pool == "amax-chain-keepdim":
            x = x.amax(2, keepdim=True).amax(-1, keepdim=True).squeeze(-1).squeeze(-1)
        elif self.pool == "sum":
            x = x.sum((2, 3)) / 10
        elif self.pool == "torch.sum-keepdim":
            x = torch.sum(x, dim=(-1, -2), keepdim=True).flatten(1) / 10
        elif self.pool == "channels-last-mean":
            x = x.permute(0, 2, 3, 1).mean((1, 2))
        x = self.fc(x)
        return self.fc2(self.act(x)) if self.head == "mlp" else x


POOLS = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "adaptive_avg_pool2d",
    "mean",
    "mean-keepdim",
    "amax",
    "avg_pool2d",
    "mean-chain",
    "amax-chain-keepdim",
    "sum",
    "torch.sum-keepdim",
    "channels-last-mean",
]


class LinearGate(nn.Module):
    """Squeeze-and-excitation with Linears: pool → Linear → ReLU → Linear → sigmoid → rescale."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // 2)
        self.fc2 = nn.Linear(channels // 2, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3))))))
        return x * scale.view(x.size(0), -1, 1, 1)


class ChannelsLastBlock(nn.Module):
    """ConvNeXt-style pointwise Linears on an NHWC tensor."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.up = nn.Linear(channels, 2 * channels)
        self.down = nn.Linear(2 * channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.down(F.gelu(self.up(self.norm(x.permute(0, 2, 3, 1)))))
        return x + y.permute(0, 3, 1, 2)


class GatedNet(nn.Module):
    """A Linear gate and channels-last Linears in the trunk, then pool → Linear; returns the
    logits, or (``outputs``) a tuple or a dict with the features too."""

    def __init__(self, outputs: str = "tensor") -> None:
        super().__init__()
        self.outputs = outputs
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.gate = LinearGate(8)
        self.block = ChannelsLastBlock(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor):  # type: ignore[no-untyped-def]
        features = self.block(self.gate(F.relu(self.stem(x))))
        pooled = self.pool(features).flatten(1)
        logits = self.fc(pooled)
        if self.outputs == "tuple":
            return logits, pooled
        if self.outputs == "dict":
            return {"logits": logits, "features": features}
        return logits


class FaceStage(nn.Module):
    """A face detector's second stage as published (24x24 input): PReLU convolutions with
    ceil_mode pools, a Caffe-order flatten, and two heads: box offsets and face probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 28, 3),
            nn.PReLU(28),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(28, 48, 3),
            nn.PReLU(48),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            nn.Conv2d(48, 64, 2),
            nn.PReLU(64),
        )
        self.dense = nn.Linear(576, 128)
        self.prelu = nn.PReLU(128)
        self.boxes = nn.Linear(128, 4)
        self.faces = nn.Linear(128, 2)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.features(x)
        x = x.permute(0, 3, 2, 1).contiguous()
        x = self.prelu(self.dense(x.view(x.size(0), -1)))
        return self.boxes(x), self.softmax(self.faces(x))


class ConcatenatedFlattens(nn.Module):
    """Flattened maps joined before the first Linear, at a canonical 12x10 (no padding: every
    cell of the converted model reads exactly its window). Branch ``a`` gives a 6x5x4 map,
    branch ``b`` a 4x5x4 one with the same stride (2) and window. ``style``: "scaled" joins
    ``a``'s flatten with twice itself; "branches" the flattens of both branches (one of them
    through a ReLU, along axis -1); "functional" the same with ``torch.concat`` and ``F.linear``;
    the refused ones: "sizes" (``b`` pooled to 2x2 first), "vector" (``a``'s flatten with its
    mean over H and W), "channels-last" (both flattened NHWC)."""

    def __init__(self, style: str) -> None:
        super().__init__()
        self.style = style
        self.a = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.MaxPool2d(2))
        self.b = nn.Sequential(nn.Conv2d(3, 4, 4, stride=2), nn.ReLU())
        features = {"scaled": 2 * 6 * 20, "sizes": 6 * 20 + 4 * 2 * 2, "vector": 6 * 20 + 6}
        self.fc = nn.Linear(features.get(style, (6 + 4) * 20), 7)
        self.out = nn.Linear(7, 5)

    def joined(self, x: torch.Tensor) -> torch.Tensor:
        a = self.a(x)
        if self.style == "scaled":
            f = torch.flatten(a, 1)
            return torch.cat([f, 2 * f], 1)
        b = self.b(x)
        if self.style == "branches":
            return torch.cat([a.flatten(1), torch.relu(b.flatten(1))], -1)
        if self.style == "functional":
            return torch.concat((a.view(a.size(0), -1), b.reshape(b.shape[0], -1)), dim=1)
        if self.style == "sizes":
            return torch.cat([a.flatten(1), F.max_pool2d(b, 2).flatten(1)], 1)
        if self.style == "vector":
            return torch.cat([a.flatten(1), a.mean((2, 3))], 1)
        assert self.style == "channels-last", self.style
        return torch.cat([a.permute(0, 2, 3, 1).flatten(1), b.permute(0, 2, 3, 1).flatten(1)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.joined(x)
        functional = self.style == "functional"
        x = F.linear(x, self.fc.weight, self.fc.bias) if functional else self.fc(x)
        return self.out(torch.relu(x))


class StageR(nn.Module):
    """MTCNN's second stage in shape: two ceil_mode pools, the first partial at 24x24."""

    def __init__(self, pool: type[nn.Module]) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3), nn.PReLU(8), pool(3, 2, ceil_mode=True),
            nn.Conv2d(8, 12, 3), nn.PReLU(12), pool(3, 2, ceil_mode=True),
            nn.Conv2d(12, 16, 2), nn.PReLU(16),
        )  # fmt: skip
        self.fc = nn.Linear(16 * 3 * 3, 32)
        self.prob = nn.Linear(32, 2)
        self.box = nn.Linear(32, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.relu(self.fc(self.features(x).flatten(1)))
        return self.box(x), self.prob(x).softmax(1)
