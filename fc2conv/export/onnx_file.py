"""Exported ONNX files, without PyTorch: metadata, single-file assembly, checks and the final move.

Nothing here imports torch, so that a process which checks an exported model holds only onnx,
onnxruntime and the model itself (see :mod:`.isolated`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compare import relative_error
from ..errors import ExportError, Fc2ConvError
from ..geometry import Geometry
from ..runtime import open_session

__all__ = [
    "CASES_FILE",
    "METADATA_PREFIX",
    "TWO_GB",
    "UNKNOWN_PREPROCESSING",
    "SizeCheck",
    "check_file",
    "check_map_size",
    "check_target",
    "checked_session",
    "commit",
    "data_path",
    "describe_converted",
    "embed_external_data",
    "encode_metadata",
    "fc2conv_metadata",
    "looks_like_onnx",
    "preprocessing_known",
    "read_metadata",
    "save_cases",
    "staged",
    "staging_folder",
    "write_single_file",
]

METADATA_PREFIX = "fc2conv."
CASES_FILE = "checks.npz"
#: protobuf's limit on one serialized message: larger weights go to an external data file
TWO_GB = 2 * 1024**3

# Protobuf tags (field number << 3 | length-delimited) of the fields the assembly writes itself.
_MODEL_GRAPH = 7 << 3 | 2
_GRAPH_INITIALIZER = 5 << 3 | 2
_TENSOR_RAW_DATA = 9 << 3 | 2
_COPY_CHUNK = 16 * 1024 * 1024


@dataclass
class SizeCheck:
    """onnxruntime against PyTorch at one input size: the map size and the relative error, and
    the tolerance it was held to (``rtol``, or more where PyTorch's own float32 rounding is
    larger: see :func:`check_file`). ``relative_error`` is None at a size with no reference
    (the second route's larger sizes, where the map's size and values are checked)."""

    height: int
    width: int
    map_size: tuple[int, int]
    relative_error: float | None
    tolerance: float

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> SizeCheck:
        """A check as a child process sends it back (``asdict``, through JSON)."""
        return cls(**{**values, "map_size": tuple(values["map_size"])})


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """fc2conv's metadata from an exported model, decoded (no weights are loaded). A file that
    is not a complete ONNX model raises Fc2ConvError."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, OSError, ValueError) as exc:
        raise Fc2ConvError(
            f"cannot read {path}: not a complete ONNX model ({type(exc).__name__}: {exc}); "
            "copy or export it again"
        ) from exc
    return decode_metadata({prop.key: prop.value for prop in model.metadata_props})


def decode_metadata(properties: Mapping[str, str]) -> dict[str, Any]:
    """fc2conv's metadata from a model's metadata properties (as :func:`read_metadata` reads
    them from the file, or onnxruntime's ``custom_metadata_map`` from an open session)."""
    result: dict[str, Any] = {}
    for name, value in properties.items():
        if name.startswith(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :]
            try:
                result[key] = json.loads(value)
            except json.JSONDecodeError:
                result[key] = value
    if "geometry" in result:
        result["geometry"] = Geometry.from_dict(result["geometry"])
    if "head" in result and "mode" not in result:  # files of fc2conv 0.1 called the mode "head"
        result["mode"] = result.pop("head")
    return result


#: what fc2conv says where a model's source does not tell its preprocessing
UNKNOWN_PREPROCESSING = (
    "preprocessing unknown: images will run as they are (mean 0, std 1); if the model was trained "
    "on normalised images, pass --mean/--std, or --imagenet"
)


def preprocessing_known(metadata: dict[str, Any]) -> bool:
    """Whether an fc2conv file's (or a converted model's) metadata says its mean and std."""
    return metadata.get("mean") is not None and metadata.get("std") is not None


def fc2conv_metadata(
    *,
    model: str,
    mode: str,
    outputs: list[dict[str, Any]],
    geometry: Geometry,
    input_channels: int,
    details: dict[str, Any],
) -> dict[str, str]:
    """The metadata_props of an fc2conv file, encoded: what heatmaps and detection read (the
    geometry, outputs, input channels) and ``details`` (classes, mean, std, source, ...;
    None values left out), with fc2conv's version."""
    from .._version import __version__

    return encode_metadata(
        {
            **details,
            "version": __version__,
            "model": model,
            "mode": mode,
            "outputs": outputs,
            "geometry": geometry.as_dict(),
            "input_channels": input_channels,
        }
    )


def describe_converted(path: str | os.PathLike, meta: dict[str, Any]) -> str:
    """What an fc2conv file holds, from its metadata (:func:`read_metadata`)."""
    precision = f", {meta['precision']}" if "precision" in meta else ""
    lines = [
        f"{path}: {meta.get('model', '?')} converted by fc2conv {meta.get('version', '?')}"
        + precision
    ]
    lines.append(f"geometry: {meta['geometry']}")
    if meta.get("mode") == "cam":
        lines.append(
            "mode: cam, a class-activation map (a cell per feature position, their mean the "
            "logits): heatmaps run it once at the image's size; detection averages it over "
            "windows and takes its boxes from it"
        )
    for output in meta.get("outputs", []):
        lines.append(
            f"output {output['name']}: {output['channels']} classes, ends in {output['ending']}"
        )
    classes = meta.get("classes") or []
    shown = ", ".join(map(str, classes[:20]))
    if len(classes) > 20:
        shown += f", … ({len(classes)} in all; read_metadata(path)['classes'] lists them)"
    lines.append(f"class names: {shown}" if classes else "class names: none (class 0, 1, …)")
    order = meta.get("channel_order", "RGB")
    lines.append(f"preprocessing: {order}, mean {meta.get('mean', 0)}, std {meta.get('std', 1)}")
    return "\n".join(lines)


def encode_metadata(values: dict[str, Any]) -> dict[str, str]:
    """fc2conv's metadata as ONNX metadata_props: prefixed keys, JSON values (strings as they
    are); None values are left out. :func:`read_metadata` decodes them."""
    return {
        METADATA_PREFIX + key: value if isinstance(value, str) else json.dumps(value)
        for key, value in values.items()
        if value is not None
    }


def looks_like_onnx(path: str | os.PathLike) -> bool:
    """True when ``path`` is a file that starts like a serialized ONNX ModelProto (field 1,
    ``ir_version``, then one of the model's other fields), whatever its name."""
    try:
        with open(path, "rb") as file:
            start = file.read(16)
    except OSError:
        return False
    if len(start) < 3 or start[0] != 0x08 or not 1 <= start[1] <= 20:
        return False
    # the next field: producer_name, producer_version, domain, model_version, doc_string,
    # graph, opset_import, metadata_props, training_info, functions or configuration
    return start[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA, 0xD2)


def check_target(target: Path, force: bool) -> None:
    """Refuse an output path that cannot be written, or that exists without ``force``."""
    if target.suffix != ".onnx":
        raise ExportError(f"{target}: the output file name must end in .onnx")
    if not force:
        for existing in (target, data_path(target)):
            if existing.exists():
                raise ExportError(f"{existing} already exists; pass --force to replace it")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise ExportError(f"{target}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise ExportError(f"{target}: folder {folder} is not writable")


def data_path(model_path: Path) -> Path:
    """Where the external weights of ``model_path`` live."""
    return model_path.with_name(model_path.name + ".data")


def staging_folder(target: Path) -> Path:
    """A fresh hidden folder beside ``target``: same file system, so the final move is a rename.
    Also the real test that the folder takes files (``os.access`` says yes to root everywhere)."""
    folder = target.parent if str(target.parent) else Path(".")
    try:
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=folder))
    except OSError as exc:
        raise ExportError(
            f"{target}: folder {folder} cannot take files ({exc.strerror or exc}); "
            "choose another output folder"
        ) from exc


@contextlib.contextmanager
def staged(target: Path | None, force: bool = False) -> Iterator[Path]:
    """The one way fc2conv writes a model file. ``target`` is checked (its name, an existing
    file without ``force``, its folder), then the block gets a path in a fresh staging folder
    beside it to write and check the file at; when the block ends without an error, the file
    (and its external weights) move into place, so that a failed check or an interruption
    leaves no partial file. The staging folder is always removed. With ``target`` None the
    path is in a temporary folder and nothing is kept (a checked conversion not written)."""
    if target is not None:
        check_target(target, force)
    folder = staging_folder(target) if target is not None else Path(tempfile.mkdtemp())
    try:
        path = folder / (target.name if target is not None else "model.onnx")
        yield path
        if target is not None:
            commit(path, target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def commit(staged: Path, target: Path) -> None:
    """Move a checked model (and its external weights, if any) into place."""
    staged_data, target_data = data_path(staged), data_path(target)
    if staged_data.exists():
        os.replace(staged_data, target_data)
    elif target_data.exists():
        target_data.unlink()  # a stale weights file from an earlier, larger export
    os.replace(staged, target)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(tag: int, length: int) -> bytes:
    return _varint(tag) + _varint(length)


#: reads ``length`` bytes at ``offset`` of an external-data ``location``, in pieces
WeightReader = Callable[[str, int, int], Iterable[Any]]


def _file_reader(folder: Path) -> WeightReader:
    def read(location: str, offset: int, length: int) -> Iterator[bytes]:
        with open(folder / location, "rb") as data:
            data.seek(offset)
            while length:
                chunk = data.read(min(_COPY_CHUNK, length))
                if not chunk:
                    raise ExportError(f"{folder / location} ends before the weights it should hold")
                yield chunk
                length -= len(chunk)

    return read


def embed_external_data(source: Path, target: Path) -> None:
    """Write ``source`` (a model with external weights) as the single file ``target``."""
    import onnx

    model = onnx.load(str(source), load_external_data=False)
    write_single_file(model, target, _file_reader(source.parent))


def write_single_file(model: Any, target: Path, read: WeightReader) -> None:
    """Write ``model`` (an onnx ModelProto whose initializers may refer to external data) as the
    single file ``target``, taking the external bytes from ``read``.

    onnx's own way, loading every weight into the protobuf message and serializing it, holds the
    weights twice in memory. Here the message is written piece by piece: the model and graph
    without their initializers, then each initializer's header followed by its raw bytes as
    ``read`` gives them. Protobuf allows fields in any order, so the result parses to the same
    message as the model with its weights loaded. Only top-level initializers may be external.
    ``model`` loses its graph.
    """
    import onnx
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data

    initializers = list(model.graph.initializer)
    del model.graph.initializer[:]
    pieces: list[tuple[bytes, str | None, int, int]] = []  # header, location, offset, length
    for tensor in initializers:
        if not uses_external_data(tensor):
            pieces.append((tensor.SerializeToString(), None, 0, 0))
            continue
        info = ExternalDataInfo(tensor)
        if info.length is None:
            raise ExportError(f"{target.name}: initializer {tensor.name} has no data length")
        tensor.ClearField("external_data")
        tensor.ClearField("data_location")
        tensor.ClearField("raw_data")
        pieces.append((tensor.SerializeToString(), info.location, info.offset or 0, info.length))
    left = [
        t.name for t in onnx.external_data_helper._get_all_tensors(model) if uses_external_data(t)
    ]
    if left:
        raise ExportError(f"{target.name}: external data outside the graph's initializers: {left}")

    def tensor_size(header: bytes, length: int, location: str | None) -> int:
        return len(header) + (len(_field(_TENSOR_RAW_DATA, length)) + length if location else 0)

    graph_rest = model.graph.SerializeToString()
    model.ClearField("graph")
    sizes = [tensor_size(h, n, where) for h, where, _, n in pieces]
    graph_size = len(graph_rest) + sum(len(_field(_GRAPH_INITIALIZER, s)) + s for s in sizes)
    with open(target, "wb") as out:
        out.write(model.SerializeToString())
        out.write(_field(_MODEL_GRAPH, graph_size))
        out.write(graph_rest)
        for (header, location, start, length), size in zip(pieces, sizes, strict=True):
            out.write(_field(_GRAPH_INITIALIZER, size))
            out.write(header)
            if location is None:
                continue
            out.write(_field(_TENSOR_RAW_DATA, length))
            written = 0
            for chunk in read(location, start, length):
                out.write(chunk)
                written += len(memoryview(chunk).cast("B"))
            if written != length:
                raise ExportError(
                    f"{target.name}: {written} bytes of weights where {length} belong"
                )


@dataclass
class Case:
    """Check inputs, the PyTorch outputs they must give, and PyTorch's own float32 noise: the
    relative error between evaluations of the same images that differ only in the order of
    their float32 sums (see ``torch_onnx.reference_cases``)."""

    images: np.ndarray
    outputs: list[np.ndarray]
    noise: float


def save_cases(path: Path, cases: Sequence[Case]) -> None:
    """Store check cases for ``check_file``."""
    arrays: dict[str, np.ndarray] = {}
    for index, case in enumerate(cases):
        arrays[f"{index}_images"] = case.images
        arrays[f"{index}_noise"] = np.array(case.noise)
        for number, output in enumerate(case.outputs):
            arrays[f"{index}_output_{number}"] = output
    np.savez(path, **arrays)  # type: ignore[arg-type]


def load_cases(path: Path) -> list[Case]:
    with np.load(path) as arrays:
        cases = []
        index = 0
        while f"{index}_images" in arrays:
            outputs: list[np.ndarray] = []
            while f"{index}_output_{len(outputs)}" in arrays:
                outputs.append(arrays[f"{index}_output_{len(outputs)}"])
            noise = float(arrays[f"{index}_noise"])
            cases.append(Case(arrays[f"{index}_images"], outputs, noise))
            index += 1
    return cases


#: onnxruntime may differ from PyTorch by this many times PyTorch's own float32 noise
NOISE_FACTOR = 10
#: above this float32 noise no tolerance tells rounding from a wrong export: such weights make
#: the model numerically chaotic (outputs of 1e9, errors of 100%), and the check refuses them
MAX_NOISE = 1e-3


def checked_session(path: Path, name: str, say: Callable[[str], None]) -> Any:
    """onnx.checker's full check of a written model, then an onnxruntime session to check it
    with. Extended optimisation: the file is run a few times only, and "all" would hold a
    second, re-laid-out copy of every convolution weight. No arena: the activations of one size
    are freed before the next, larger one runs."""
    import onnx

    say("checking the ONNX graph (onnx.checker, full check)")
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"{name}: onnx.checker rejects the written model: {exc}") from exc
    return open_session(path, optimization="extended", memory_arena=False)


def check_map_size(
    maps: Sequence[np.ndarray], geometry: Geometry, height: int, width: int, name: str
) -> tuple[int, int]:
    """The map size the geometry predicts at ``height``×``width``; ExportError where an
    output's map has another."""
    want = geometry.output_size(height, width, name)
    for output in maps:
        got = tuple(output.shape[-2:])
        if got != want:
            raise ExportError(
                f"{name}: at {height}x{width} onnxruntime gives a {got[0]}x{got[1]} map, the "
                f"geometry predicts {want[0]}x{want[1]}"
            )
    return want


def check_file(
    path: Path,
    cases_path: Path,
    rtol: float,
    say: Callable[[str], None] = lambda detail: None,
) -> list[SizeCheck]:
    """Check a written model: onnx.checker with full_check, then onnxruntime on every stored
    case against the PyTorch outputs and the geometry's map size.

    The relative error must stay within ``rtol``, or within ``NOISE_FACTOR`` times PyTorch's
    own float32 noise on that case where that is larger: on ill-conditioned weights two float32
    evaluations of the same model differ by more than ``rtol``, and that is rounding, not a
    wrong export (a wrong export differs by orders of magnitude more). Above ``MAX_NOISE``
    the check refuses: nothing can be verified against such a reference."""

    metadata = read_metadata(path)
    name = metadata.get("model", path.name)
    geometry: Geometry = metadata["geometry"]
    runtime = checked_session(path, name, say)
    results = []
    for case in load_cases(cases_path):
        images, expected = case.images, case.outputs
        height, width = images.shape[-2:]
        say(f"checking in onnxruntime at {height}x{width}")
        try:
            actual = runtime.run(None, {runtime.get_inputs()[0].name: images})
        except Exception as exc:  # onnxruntime raises its own Fail, InvalidArgument, ...
            detail = " ".join(str(exc).split()).split("Status Message:")[-1]
            detail = detail.split(" was false. ")[-1].strip()[-300:]
            raise ExportError(
                f"{name}: the exported model fails in onnxruntime on a {width}×{height} image "
                f"({detail}): the exporter fixed a size the model computes from its "
                "input (as torch.onnx does for windowed attention), so the file is not written"
            ) from exc
        want_size = check_map_size(actual, geometry, height, width, name)
        if len(actual) != len(expected):
            raise ExportError(
                f"{name}: onnxruntime gives {len(actual)} outputs, PyTorch {len(expected)}"
            )
        if case.noise > MAX_NOISE:
            raise ExportError(
                f"{name}: PyTorch's own float32 outputs differ by {case.noise:.1e} (relative) "
                "between evaluations of the same images that differ only in their order of sums: "
                "with these weights the model is numerically unstable, so no check can tell "
                "onnxruntime's rounding from a wrong export; export it with trained weights"
            )
        error = max(relative_error(e, a) for e, a in zip(expected, actual, strict=True))
        tolerance = max(rtol, NOISE_FACTOR * case.noise)
        if not error <= tolerance:
            raise ExportError(
                f"{name}: at {height}x{width} onnxruntime differs from PyTorch: "
                f"relative error {error:.2e} > {tolerance:.1e}"
            )
        results.append(SizeCheck(height, width, want_size, error, tolerance))
    return results
