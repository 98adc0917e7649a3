"""timm's models as the timm tests and the timm sweep check them: the smallest model of each
timm family, and one model converted and verified (used by ``tests/test_timm.py`` and
``benchmarks/timm_zoo.py``).

timm is imported where it is used, so that importing this module needs no timm (the tests skip
without it, the sweep stops).
"""

from __future__ import annotations

import time

import torch
from helpers import RTOL, calibrate

import fc2conv
from fc2conv.sources import load_model


def smallest_model(family: str) -> str:
    """The timm model of ``family`` (a timm module) with the fewest parameters, counted on a
    copy built on the meta device (no memory, no initialisation)."""
    import timm

    def parameters(name: str) -> int:
        try:
            with torch.device("meta"):
                model = timm.create_model(name)
        except Exception:  # some builders compute with tensors: count those last
            return 1 << 62
        return sum(p.numel() for p in model.parameters())

    return min(timm.list_models(module=family), key=lambda name: (parameters(name), name))


def family_models() -> dict[str, str]:
    """One small model per timm family (module)."""
    import timm

    return {family: smallest_model(family) for family in timm.list_modules()}


def check_timm_model(name: str) -> dict[str, object]:
    """Convert and verify one timm model; a mismatch raises EquivalenceError."""
    start = time.perf_counter()
    try:
        loaded = load_model(f"timm:{name}", "none")
        model = calibrate(loaded.model, loaded.input_size)
    except Exception as exc:  # the model itself does not build or run here
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160]}"
        return {"result": "failed", "reason": reason, "seconds": time.perf_counter() - start}
    try:
        converted = fc2conv.convert(
            model, loaded.input_size, name=name, inplace=True, input_channels=loaded.input_channels
        )
    except (fc2conv.UnsupportedModelError, fc2conv.TraceError) as exc:
        reason = "; ".join(f"{layer}: {why}" for layer, why in getattr(exc, "reasons", [])[:2])
        reason = (reason or str(exc).splitlines()[0])[:240].replace("|", "/")
        return {"result": "refused", "reason": reason, "seconds": time.perf_counter() - start}
    seconds = time.perf_counter() - start
    report = fc2conv.verify(model, converted, rtol=RTOL)
    return {
        "result": "converted",
        "relative error": report.relative_error,
        "geometry": str(converted.geometry),
        "seconds": seconds,
    }
