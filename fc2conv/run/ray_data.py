"""Beyond one machine: the per-image job of :mod:`.batch` on a Ray cluster, with Ray Data.

Ray reads the image files (local paths, or any URI its file systems know: ``s3://``,
``gs://``, …) with ``ray.data.read_binary_files``; ``Dataset.map_batches`` hands them to
:class:`ImageJob` actors, one model per actor, which decode and run them exactly as the plain
folder run does and return one JSON Lines record per image. The driver streams the records as
they come (in no fixed order). A clip is one row: its bytes go whole to one actor, which runs
its sampled frames and returns their records in order. Ray is an optional extra:
``pip install -e ".[ray]"``.

    import ray, fc2conv.run.ray_data as on_ray
    ray.init(address="auto")                       # or ray.init() for a local cluster
    for record in on_ray.run("detect", "model_fcn.onnx", ["s3://bucket/photos/"]):
        ...
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import Fc2ConvError
from .batch import run_images
from .runner import Runner

__all__ = ["ImageJob", "require_ray", "run"]

INSTALL = 'pip install -e ".[ray]" (or pip install "ray[data]")'


def require_ray() -> Any:
    """The ray module, or a one-line error that says how to install it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise Fc2ConvError(f"Ray is not installed; {INSTALL}") from exc
    return ray


class ImageJob:
    """A ``map_batches`` actor: opens the model once (from its bytes, so that no node needs
    the driver's file) and turns each batch of ``{"path", "bytes"}`` rows into records."""

    def __init__(
        self,
        model: Any,
        command: str,
        settings: dict[str, Any],
        runtime: str = "onnxruntime",
        precision: str = "fp32",
    ) -> None:
        import ray

        if isinstance(model, ray.ObjectRef):  # the model's bytes, put once into the object store
            model = ray.get(model)
        self.folder = tempfile.mkdtemp(prefix="fc2conv-ray-")
        path = Path(self.folder) / "model.onnx"
        path.write_bytes(model)
        # one CPU per actor: no oversubscription
        self.runner = Runner.from_onnx(path, threads=1, runtime=runtime, precision=precision)
        self.command, self.settings = command, dict(settings)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list[str]]:
        sources = [(str(p), bytes(b)) for p, b in zip(batch["path"], batch["bytes"], strict=True)]
        lines = run_images(self.command, self.runner, sources, self.settings)
        return {"record": [json.dumps(line) for _, line in lines]}


def run(
    command: str,
    model: str | os.PathLike,
    images: Sequence[str | os.PathLike],
    *,
    workers: int = 2,
    batch_size: int = 4,
    runtime: str = "onnxruntime",
    precision: str = "fp32",
    **settings: Any,
) -> Iterator[dict[str, Any]]:
    """Run ``command`` ("detect" or "heatmap", with its ``settings`` as for
    :func:`~fc2conv.run.batch.detect_many` / ``heatmap_many``, and ``classes``/``top`` for
    heatmaps) on every image with ``workers`` actors of one CPU each, each running the model in
    ``runtime`` at ``precision`` (see :meth:`Runner.from_onnx`), on the Ray cluster this
    process is connected to (``ray.init()`` first; a local one is started otherwise). Yields
    one record per image as the cluster finishes it. A local path that does not exist is
    recorded as failed without reaching the cluster."""
    if command not in ("detect", "heatmap"):
        raise Fc2ConvError(f"unknown command {command!r}; use detect or heatmap")
    ray = require_ray()
    from ..export.onnx_file import read_metadata

    model_bytes = Path(model).read_bytes()
    name = str(read_metadata(model).get("model", Path(model).stem))
    present = []
    for image in images:
        text = str(image)
        if "://" not in text and not Path(text).is_file():
            yield {
                "path": text, "command": command, "model": name, "image_size": None,
                "seconds": 0.0, "error": f"cannot read image {text}: no such file",
            }  # fmt: skip
        else:
            present.append(text)
    if not present:
        return
    import logging

    if not ray.is_initialized():
        ray.init(log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR)

    logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-dataset progress lines
    ray.data.DataContext.get_current().enable_progress_bars = False
    # reading takes no CPU of its own: the actors hold the cores, and reads must still run
    dataset = ray.data.read_binary_files(present, include_paths=True, num_cpus=0)
    dataset = dataset.map_batches(
        ImageJob,
        fn_constructor_kwargs={
            "model": ray.put(model_bytes),
            "command": command,
            "settings": settings,
            "runtime": runtime,
            "precision": precision,
        },
        batch_size=batch_size,
        concurrency=workers,
        num_cpus=1,
    )
    for row in dataset.iter_rows():
        yield json.loads(row["record"])
