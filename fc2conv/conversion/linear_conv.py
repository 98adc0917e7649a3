"""The convolution a Linear becomes, sharing the Linear's storage.

A Linear applied to a row-major flatten of an NCHW map computes
``y[o] = sum_{c,h,w} W[o, c*H*W + h*W + w] * x[c, h, w] + b[o]``,
which is exactly a valid convolution with kernel ``W.view(out, C, H, W)`` at one position.
A ``view`` shares storage, so the converted layer costs no memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["LinearConv2d", "conv_from_linear", "linear_kernel"]


def _tracing() -> bool:
    compiler = torch.compiler
    exporting = getattr(compiler, "is_exporting", lambda: False)
    return bool(compiler.is_compiling() or exporting() or torch.jit.is_tracing())


class LinearConv2d(nn.Conv2d):
    """The Conv2d a Linear becomes. Where the output has few positions it is computed as the
    Linear was, a matrix product over the unfolded windows: oneDNN's direct convolution is
    several times slower there (a 7x7 kernel over a 7x7 map); elsewhere, and always when
    exporting or compiling, it is an ordinary convolution. Both compute the same sums."""

    #: output positions per image up to which the matrix product is used
    max_product_positions = 192

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        height, width = self.kernel_size
        spread = self.dilation  # a finer stride spreads the kernel (see conversion.refine)
        rows = input.shape[-2] - spread[0] * (height - 1)
        cols = input.shape[-1] - spread[1] * (width - 1)
        plain = self.stride == (1, 1) and self.padding == (0, 0)
        if _tracing() or not plain or input.dim() != 4 or rows * cols > self.max_product_positions:
            return super().forward(input)
        windows = (
            input.flatten(2)
            if (height, width) == (1, 1)
            else F.unfold(input, (height, width), dilation=spread)
        )
        output = torch.matmul(self.weight.view(self.out_channels, -1), windows)
        if self.bias is not None:
            output = output + self.bias[:, None]
        return output.view(input.shape[0], self.out_channels, rows, cols)


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
        conv = LinearConv2d(
            channels, linear.out_features, (height, width), bias=linear.bias is not None
        )
    conv.weight = nn.Parameter(
        linear_kernel(linear.weight, channels, height, width),
        requires_grad=linear.weight.requires_grad,
    )
    conv.bias = linear.bias
    return conv
