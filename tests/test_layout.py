"""The package layout: every import points down the pipeline, there are no cycles, and the run
path on an .onnx file needs no PyTorch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "fc2conv"
#: the checkout: its tests/ and benchmarks/ folders
ROOT = PACKAGE.parent

#: the pipeline, in order; a module may import modules of its own stage or of earlier ones
STAGES = [
    (
        "shared",
        ["_version", "errors", "compare", "geometry", "partial_windows", "progress", "runtime"],
    ),
    ("load", ["sources", "shapes.spec", "shapes.net"]),
    ("convert", ["conversion"]),
    ("verify", ["equivalence"]),
    ("export", ["export"]),
    ("onnx in", ["onnx_in"]),  # the pipeline over an ONNX graph, writing as the export does
    ("run", ["run"]),
    ("pipeline", ["pipeline"]),  # name → loaded → converted → exported → run: above the stages
    ("demo", ["shapes.scenes", "shapes.train", "shapes.__main__", "shapes.quality"]),
    ("api", [""]),  # the package root: fc2conv.convert, fc2conv.detect, ...
    ("command line", ["cli", "__main__"]),
]
#: modules that must not import torch at their top level (the run path, the file checks)
TORCH_FREE = [
    "",
    "errors",
    "compare",
    "geometry",
    "partial_windows",
    "progress",
    "runtime",
    "onnx_in.borders",
    "sources",
    "sources.base",
    "sources.catalogue",
    "shapes.spec",
    "export",
    "export.isolated",
    "export.onnx_file",
    "pipeline",
    "pipeline.spec",
    "pipeline.prepared",
    "pipeline.export",
    "pipeline.open",
    "pipeline.inspect",
    "run",
    "run.batch",
    "run.many",
    "run.outputs",
    "run.boxes",
    "run.detection",
    "run.heatmaps",
    "run.images",
    "run.pyramid",
    "run.quantize",
    "run.ray_data",
    "run.render",
    "run.runner",
    "cli",
    "cli.options",
    "cli.run",
]


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path  # "" is the package root
    return found


def stage_of(module: str) -> int:
    for index, (_, prefixes) in enumerate(STAGES):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return index
    if module == "shapes":
        return 1  # the package's docstring only
    if module == "":
        return [name for name, _ in STAGES].index("api")
    raise AssertionError(f"fc2conv.{module} belongs to no stage; add it to STAGES")


def imports(module: str, path: Path, *, top_level_only: bool = False) -> set[str]:
    """fc2conv modules (and 'torch') that ``module`` imports, lazily or not."""
    tree = ast.parse(path.read_text())
    parts = module.split(".") if module else []
    package = parts if path.name == "__init__.py" else parts[:-1]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    known = modules()
    found: set[str] = set()
    for node in nodes:
        if top_level_only and isinstance(node, ast.If):  # `if TYPE_CHECKING:` imports
            continue
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                prefix = ".".join(["fc2conv", *base, *([node.module] if node.module else [])])
            else:
                prefix = node.module or ""
            names = [f"{prefix}.{alias.name}" for alias in node.names]
            if prefix != "fc2conv":  # `from fc2conv import errors` imports a module, not the root
                names.append(prefix)
        for name in names:
            if name == "torch" or name.startswith("torch."):
                found.add("torch")
            elif name == "fc2conv" or (
                name.startswith("fc2conv.") and name.count(".") == 1 and name[8:] not in known
            ):
                found.add("")  # the package root, or a name it defines (fc2conv.__version__)
            elif name.startswith("fc2conv."):
                inner = name.removeprefix("fc2conv.")
                if inner in known:
                    found.add(inner)
    return found


def test_every_module_belongs_to_a_stage() -> None:
    for module in modules():
        stage_of(module)


@pytest.mark.parametrize("module", sorted(modules()))
def test_imports_point_down_the_pipeline(module: str) -> None:
    later = [
        other
        for other in imports(module, modules()[module]) - {"torch"}
        if stage_of(other) > stage_of(module)
    ]
    assert not later, f"fc2conv.{module} imports later stages: {later}"


def test_no_import_cycles() -> None:
    graph = {module: imports(module, path) - {"torch"} for module, path in modules().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for other in sorted(graph[module]):
            if (
                other.startswith(module + ".")
                or module.startswith(other + ".")
                or ""
                in (
                    module,
                    other,
                )
            ):
                continue  # a package and its own modules (the root holds them all)
            if state.get(other) == 1:
                raise AssertionError(f"import cycle: {' -> '.join([*path, other])}")
            if other not in state:
                visit(other, [*path, other])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


#: and every module of the ONNX path, which never needs PyTorch
ONNX_PATH = sorted(m for m in modules() if m == "onnx_in" or m.startswith("onnx_in."))


@pytest.mark.parametrize("module", TORCH_FREE + ONNX_PATH)
def test_torch_free_modules(module: str) -> None:
    assert "torch" not in imports(module, modules()[module], top_level_only=True)


def test_heatmap_and_detect_of_an_onnx_file_need_no_torch(tmp_path: Path) -> None:
    from fc2conv.pipeline import export_model

    path = tmp_path / "shapes.onnx"
    export_model("shapes", path, check=False)
    code = (
        "import sys, numpy as np, fc2conv; "
        "from fc2conv.shapes.scenes import draw_scene; "
        "from fc2conv.run.render import save_detections, save_heatmaps; "
        "scene = draw_scene(3, width=200, height=150); "
        f"maps = fc2conv.heatmap(r'{path}', scene.image); "
        f"found = fc2conv.detect(r'{path}', scene.image); "
        f"save_heatmaps(scene.image / 255, maps, r'{tmp_path / 'h.png'}', ['star']); "
        f"save_detections(scene.image / 255, found, r'{tmp_path / 'd.png'}'); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "h.png").stat().st_size > 0 and (tmp_path / "d.png").stat().st_size > 0


def test_architecture_doc_names_every_module() -> None:
    """docs/architecture.md has a line for every module (rules by their folder, ONNX rules by
    file), so a new module cannot land undescribed."""
    doc = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = []
    for name, path in modules().items():
        relative = path.relative_to(PACKAGE).as_posix()
        if relative.startswith("conversion/rules/"):
            relative = "conversion/rules/"
        elif relative.startswith("onnx_in/rules/"):
            relative = relative.removeprefix("onnx_in/rules/")
        elif path.name in ("__init__.py", "__main__.py") and name not in ("sources", "cli"):
            continue
        if f"`{relative}`" not in doc and f"`{relative}`," not in doc:
            missing.append(relative)
    assert not missing, f"docs/architecture.md does not name {missing}"


def imported_modules(path: Path) -> set[str]:
    """The modules ``path`` imports, lazily or not, by the names written: ``from a import b``
    gives both ``a`` and ``a.b`` (b may be a module), ``from . import b`` gives ``b``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            found.update([base] if base else [])
            found.update(f"{base}.{alias.name}" if base else alias.name for alias in node.names)
    return found


def test_no_test_module_is_imported() -> None:
    """Code that tests and benchmarks share lives in helper modules under tests/ (helpers.py,
    timm_models.py, torchvision_models.py, ...), never in a test module: neither a benchmark
    nor a test module imports a module named test_*."""
    files = sorted([*(ROOT / "benchmarks").rglob("*.py"), *(ROOT / "tests").rglob("*.py")])
    assert any(path.name.startswith("test_") for path in files)  # the folders were found
    found = set()
    for path in files:
        for name in imported_modules(path):
            parts = name.split(".")
            tests = [index for index, part in enumerate(parts) if part.startswith("test_")]
            if tests:  # named down to the test module (`test_a`, not `test_a.helper`)
                module = ".".join(parts[: tests[0] + 1])
                found.add(f"{path.relative_to(ROOT).as_posix()} imports {module}")
    assert not found, "; ".join(sorted(found))
