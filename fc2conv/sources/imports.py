"""Import strings (``package.module:attribute``) as model names, and ``--model-arg`` values:
told apart and parsed without PyTorch."""

from __future__ import annotations

import ast
import re
from typing import Any

from ..errors import ModelLoadError

__all__ = ["is_import_string", "parse_model_args"]

IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
PREFIXES = ("timm:", "hf:")


def is_import_string(name: str) -> bool:
    """``module.path:attribute`` (not one of the prefixed sources such as ``timm:NAME``)."""
    return bool(IMPORT_STRING.match(name)) and not name.startswith(PREFIXES)


def parse_model_args(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``["width=2", "name=tiny"]`` → ``{"width": 2, "name": "tiny"}``: Python literals where a
    value is one, else the text."""
    args: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ModelLoadError(f"--model-arg {pair}: write it as key=value, e.g. width=2")
        try:
            args[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            args[key] = text
    return args
