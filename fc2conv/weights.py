"""Pure tensor functions that turn Linear parameters into convolution parameters.

A Linear applied to a row-major flatten of an NCHW map computes
``y[o] = sum_{c,h,w} W[o, c*H*W + h*W + w] * x[c, h, w] + b[o]``,
which is exactly a valid convolution with kernel ``W.view(out, C, H, W)`` at one position.
A ``view`` shares storage, so the converted layer costs no memory.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["conv_from_linear", "linear_kernel"]


def linear_kernel(weight: torch.Tensor, channels: int, height: int, width: int) -> torch.Tensor:
    """View a Linear weight of shape (out, C*H*W) as a conv kernel (out, C, H, W); no copy."""
    out_features, in_features = weight.shape
    if in_features != channels * height * width:
        raise ValueError(f"Linear takes {in_features} features, not {channels}x{height}x{width}")
    return weight.view(out_features, channels, height, width)


def conv_from_linear(
    linear: nn.Linear, channels: int, height: int = 1, width: int = 1
) -> nn.Conv2d:
    """A Conv2d whose weight and bias share storage with ``linear``'s; nothing is initialised."""
    with torch.device("meta"):
        conv = nn.Conv2d(
            channels, linear.out_features, (height, width), bias=linear.bias is not None
        )
    conv.weight = nn.Parameter(
        linear_kernel(linear.weight, channels, height, width),
        requires_grad=linear.weight.requires_grad,
    )
    conv.bias = linear.bias
    return conv
