"""Reading images for the run stage, without PyTorch: files, PIL images, arrays and tensors."""

from __future__ import annotations

import math
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..errors import Fc2ConvError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageLike",
    "load_image",
    "read_image",
    "resize",
    "size_from_json",
    "size_json",
]

#: the most pixels an image file may decode to (width × height after a JPEG's reduced decoding),
#: about PIL's own "decompression bomb" warning level: 100 M pixels decode to 0.3 GB of RGB. A
#: JPEG photo of any size decodes at a reduced size when the run scales it down, so this limit
#: meets only huge images in other formats (PNG, TIFF, ...); ``max_pixels`` raises it.
DEFAULT_MAX_PIXELS = 100_000_000
_PIL_LIMIT = threading.Lock()

#: a path or open binary file, a PIL image, an H×W(×C) array, or a C×H×W / H×W×C tensor (uint8
#: or floats in [0, 1])
ImageLike = Any


def _from_pil(image: Image.Image) -> np.ndarray:
    """A PIL image upright (its EXIF orientation applied) as H×W×3 floats in [0, 1]: 16- and
    32-bit grey scaled by their own range, every other mode (palette, CMYK, grey with alpha,
    …) through PIL's conversion to RGB."""
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I;16") or image.mode == "I":
        return _from_array(np.asarray(image).astype(np.float32)[:, :, None] / 65535)
    if image.mode == "F":
        return _from_array(np.asarray(image, dtype=np.float32)[:, :, None])
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255


def _is_file(image: Any) -> bool:
    """A path, or an open binary file (e.g. io.BytesIO of an encoded image)."""
    return isinstance(image, (str, os.PathLike)) or hasattr(image, "read")


def _reason(exc: Exception) -> str:
    """Why PIL could not read a file, in words that do not depend on how it was opened."""
    if isinstance(exc, UnidentifiedImageError):
        return "not an image file (PIL cannot identify its format)"
    return str(exc)


def _name(image: Any) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else getattr(image, "name", "data")


def load_image(image: ImageLike) -> np.ndarray:
    """Any supported image as an H×W×3 float32 array in [0, 1]."""
    if _is_file(image):
        try:
            with Image.open(image) as opened:
                return _from_pil(opened)
        except (OSError, ValueError, SyntaxError) as exc:
            raise Fc2ConvError(f"cannot read image {_name(image)}: {_reason(exc)}") from exc
    if isinstance(image, Image.Image):
        return _from_pil(image)
    if hasattr(image, "detach") and hasattr(image, "permute"):  # a torch tensor
        tensor = image.detach().cpu()
        if tensor.dim() == 3 and tensor.shape[0] in (1, 3) and tensor.shape[-1] not in (1, 3):
            tensor = tensor.permute(1, 2, 0)
        image = tensor.numpy()
    return _from_array(np.asarray(image))


def _from_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise Fc2ConvError(f"expected an H x W x 3 image, got shape {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    array = array.astype(np.float32)
    if array.size and not (float(array.min()) >= -1e-3 and float(array.max()) <= 1 + 1e-3):
        raise Fc2ConvError(
            f"image values must lie in [0, 1] for floats (uint8 and uint16 arrays are scaled), "
            f"got {float(array.min()):g} to {float(array.max()):g}"
        )
    return array.clip(0, 1)


@contextmanager
def _no_pil_limit() -> Iterator[None]:
    """PIL's process-wide decompression-bomb check off while fc2conv opens a file (it refuses
    before a JPEG could be decoded at a reduced size); :func:`read_image` checks the pixels it
    decodes itself."""
    with _PIL_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def read_image(
    image: ImageLike, max_size: int | None = None, max_pixels: int | None = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, tuple[int, int]]:
    """The image as H×W×3 floats in [0, 1], scaled down to at most ``max_size`` pixels on its
    longer side, and the (height, width) of the whole image. A JPEG file is decoded at a
    reduced size where that suffices, so memory stays bounded for any photo; a file that would
    decode to more than ``max_pixels`` pixels (None: no limit) is refused, naming its size."""
    if _is_file(image) and max_size is not None:
        try:
            with _no_pil_limit(), Image.open(image) as opened:
                width, height = opened.size
                if opened.getexif().get(0x0112, 1) in (5, 6, 7, 8):  # stored turned
                    width, height = height, width
                factor = max_size / max(width, height)
                if factor < 1 and opened.format == "JPEG":
                    opened.draft(
                        "RGB",
                        (math.ceil(opened.size[0] * factor), math.ceil(opened.size[1] * factor)),
                    )
                decoded = opened.size[0] * opened.size[1]
                if max_pixels is not None and decoded > max_pixels:
                    raise Fc2ConvError(
                        f"{_name(image)}: a {width}×{height} {opened.format or ''} image decodes "
                        f"to {decoded:,} pixels, over the limit of {max_pixels:,}; pass "
                        f"--max-pixels {decoded} to read it, or scale it down first"
                    )
                if factor < 1 and not (opened.mode.startswith("I") or opened.mode == "F"):
                    # 8-bit pixels: scaled down before they become floats (a quarter the memory)
                    upright = ImageOps.exif_transpose(opened).convert("RGB")
                    if max(upright.size) > max_size:
                        target = (max(1, round(width * factor)), max(1, round(height * factor)))
                        upright = upright.resize(target, Image.Resampling.BILINEAR)
                    pixels = np.asarray(upright, dtype=np.float32) / 255
                else:
                    pixels = _from_pil(opened)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise Fc2ConvError(f"cannot read image {_name(image)}: {_reason(exc)}") from exc
        except MemoryError as exc:
            raise Fc2ConvError(
                f"cannot read image {_name(image)}: not enough memory to decode its "
                f"{width}×{height} pixels"
            ) from exc
    else:
        pixels = load_image(image)
        height, width = pixels.shape[:2]
    if max_size is not None and max(pixels.shape[:2]) > max_size:
        factor = max_size / max(height, width)
        pixels = resize(pixels, (max(1, round(height * factor)), max(1, round(width * factor))))
    return pixels, (height, width)


def size_json(height: int, width: int) -> dict[str, int]:
    """An image size as fc2conv's JSON writes it, labelled (images are width × height)."""
    return {"width": int(width), "height": int(height)}


def size_from_json(value: Any) -> tuple[int, int]:
    """(height, width) from :func:`size_json`'s form, or from the ``[height, width]`` list that
    files of fc2conv 0.2 hold."""
    if isinstance(value, dict):
        return int(value["height"]), int(value["width"])
    return int(value[0]), int(value[1])


def resize(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """An H×W×3 image in [0, 1] resized to ``size`` (height, width), bilinear."""
    if pixels.shape[:2] == size:
        return pixels
    return np.asarray(resize_bytes(as_bytes(pixels), size), dtype=np.float32) / 255


def as_bytes(pixels: np.ndarray) -> Image.Image:
    """An H×W×3 image in [0, 1] as 8-bit RGB (what :func:`resize` resizes)."""
    return Image.fromarray(np.clip(pixels * 255 + 0.5, 0, 255).astype(np.uint8))


def resize_bytes(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """An 8-bit image resized to ``size`` (height, width), bilinear, as H×W×3 bytes: the same
    values as :func:`resize`, times 255, without a conversion from floats at every level."""
    if (image.height, image.width) != size:
        image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(image)
