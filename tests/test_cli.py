"""The fc2conv command, run the way a user runs it, including every bad input it must explain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import numpy as np
import onnx
import pytest
import torch
import torchvision
from click.testing import CliRunner
from helpers import hub_checkpoint
from PIL import Image
from safetensors.torch import save_file

import fc2conv
from fc2conv.cli import main


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_list_shows_cnns_in_natural_order_with_sizes_and_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / "resnet34-b627a593.pth").write_bytes(b"")
    code, output = run("list")
    assert code == 0
    rows = {line.split()[0]: line.split()[1:] for line in output.splitlines()[1:]}
    names = list(rows)
    assert {"shapes", "vgg16", "resnet50", "convnext_tiny"} <= set(names)
    assert "vit_b_16" not in names and "swin_t" not in names
    assert len(names) == 1 + 68
    assert names.index("resnet18") < names.index("resnet34") < names.index("resnet101")
    assert rows["inception_v3"][0] == "299x299" and rows["shapes"] == ["64x64", "cached"]
    assert rows["resnet34"][1] == "cached" and rows["resnet18"][1:] == ["not", "downloaded"]


def test_list_needs_no_torch() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from fc2conv.cli import main; "
        "result = CliRunner().invoke(main, ['list']); assert result.exit_code == 0; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_inspect_prints_plan_and_geometry() -> None:
    code, output = run("inspect", "alexnet", "--weights", "none")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0] == "alexnet: plan for mode='window' at input 3x224x224"
    changes = lines[lines.index("changes:") + 1 : lines.index("kept (already per position):")]
    assert changes == [  # every rewrite, in graph order, with what it becomes
        "  avgpool: AdaptiveAvgPool2d(6x6) removed: identity on the 6x6 map at canonical size",
        "  forward: flatten: flatten of a 256x6x6 map removed (the next Linear becomes a 6x6 "
        "convolution)",
        "  classifier.1: Linear(9216→4096) → Conv2d(256→4096, kernel 6x6)",
        "  classifier.4: Linear(4096→4096) → Conv2d(4096→4096, kernel 1x1)",
        "  classifier.6: Linear(4096→1000) → Conv2d(4096→1000, kernel 1x1)",
    ]
    kept = lines[lines.index("kept (already per position):") + 1 :][:4]
    assert kept == [f"  classifier.{i}: kept (elementwise)" for i in (0, 2, 3, 5)]  # dropout, ReLU
    notes = [line for line in lines if line.startswith("note: ")]
    assert len(notes) == 1 and "pad their input or pool with ceil_mode" in notes[0]
    assert (
        "geometry: stride 32x32, window 224x224, offset 0x0, minimal input 223x223, "
        "canonical input 224x224"
    ) in lines
    # measured: padding lets a cell read beyond its 224x224 window
    assert lines[-1] == "a cell reads 355x339 pixels from (-66, -66) of its window"
    assert "a cell reads " in output


def test_export_from_a_safetensors_file(tmp_path: Path) -> None:
    weights = tmp_path / "resnet18.safetensors"
    save_file(torchvision.models.resnet18().state_dict(), str(weights))
    out = tmp_path / "resnet18_fcn.onnx"
    code, output = run("resnet18", "--weights", str(weights), "--out", str(out))
    assert code == 0, output
    assert f"wrote {out}" in output
    assert "onnxruntime at 261x325: 3x5 map, relative error" in output
    assert "geometry: stride 32x32" in output
    onnx.checker.check_model(str(out), full_check=True)


def test_default_weights_come_from_the_torch_hub_cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    model = torchvision.models.squeezenet1_1()
    hub_checkpoint(tmp_path, "squeezenet1_1", model.state_dict())
    out = tmp_path / "squeezenet.onnx"
    code, output = run("squeezenet1_1", "--out", str(out), "--quiet")
    assert code == 0, output
    assert output == ""
    metadata = fc2conv.read_metadata(out)
    assert len(metadata["classes"]) == 1000 and metadata["classes"][0] == "tench"
    loaded = fc2conv.load_model("squeezenet1_1")
    first = next(iter(model.state_dict()))
    assert torch.equal(loaded.model.state_dict()[first], model.state_dict()[first])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vgg17", "--out", "x.onnx"], "unknown model 'vgg17'; did you mean vgg19, vgg16, vgg13?"),
        (
            ["vit_b_32", "--weights", "none", "--out", "x.onnx"],
            "vit_b_32: fc2conv does not export it: its head reads the class token",
        ),
        (
            ["swin_t", "--weights", "none", "--out", "x.onnx"],
            "swin_t: fc2conv does not export it: torch.onnx bakes its shifted-window padding",
        ),
        (["shapes", "--out", "/proc/x.onnx"], "/proc/x.onnx: folder /proc cannot take files"),
    ],
)
def test_user_errors_are_one_message_and_exit_1(
    args: list[str], message: str, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, output = run(*args)
    assert code == 1
    assert f"error: {message}" in output
    assert "Traceback" not in output and len(output.strip().splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_default_weights_offline_says_what_to_do(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # nothing cached
    for proxy in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(proxy, "http://127.0.0.1:9")  # refused: no download gets through
    for exempt in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(exempt, raising=False)
    code, output = run("resnet18", "--out", str(tmp_path / "x.onnx"))
    assert code == 1
    assert "cannot download the DEFAULT weights" in output
    assert "--weights PATH, or --weights none" in output
    assert not (tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth").exists()


def test_weights_file_problems(tmp_path: Path) -> None:
    out = str(tmp_path / "x.onnx")
    code, output = run("resnet18", "--weights", str(tmp_path / "missing.pth"), "--out", out)
    assert code == 1 and "missing.pth does not exist" in output

    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"not a checkpoint")
    code, output = run("resnet18", "--weights", str(corrupt), "--out", out)
    assert code == 1 and "corrupt.pth cannot be read" in output

    other = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), other)
    code, output = run("resnet18", "--weights", str(other), "--out", out)
    assert code == 1
    assert "is not for resnet18: keys differ: " in output and "unexpected (layer1.2" in output
    assert not (tmp_path / "x.onnx").exists()


def test_output_problems(tmp_path: Path) -> None:
    code, output = run(
        "squeezenet1_1",
        "--weights",
        "none",
        "--out",
        str(tmp_path / "missing" / "x.onnx"),
        "--no-verify",
    )
    assert code == 1 and "does not exist" in output

    existing = tmp_path / "x.onnx"
    existing.write_text("keep")
    code, output = run("squeezenet1_1", "--weights", "none", "--out", str(existing))
    assert code == 1 and "already exists; pass --force" in output
    assert existing.read_text() == "keep"


def test_usage_errors_exit_2() -> None:
    assert run("resnet18")[0] == 2  # no --out
    assert run("resnet18", "--out", "x.onnx", "--mode", "sliding")[0] == 2
    assert run("resnet18", "--out", "x.onnx", "--opset", "11")[0] == 2
    code, output = run("resnet18", "--out", "x.onnx", "--input-size", "big")
    assert code == 2 and "is not a size" in output
    code, output = run("resnet18", "--out", "x.onnx", "--rtol", "-1")
    assert code == 2 and "--rtol" in output
    code, output = run("model.onnx", "--out", "x.onnx", "--std", "0.2,0,0.2")
    assert code == 2 and "must be > 0" in output


def test_cam_refusal_names_the_layer(tmp_path: Path) -> None:
    code, output = run(
        "mobilenet_v3_small",
        "--weights",
        "none",
        "--mode",
        "cam",
        "--out",
        str(tmp_path / "x.onnx"),
    )
    assert code == 1
    assert "classifier.1: is not affine; mode='cam' needs an affine classifier" in output


def test_help_of_the_default_command_shows_how_it_is_called() -> None:
    code, output = run("shapes", "--help")
    assert code == 0
    assert output.startswith("Usage: fc2conv MODEL --out PATH [OPTIONS]")


def test_misspelled_command_is_a_usage_error_with_a_suggestion() -> None:
    code, output = run("heatmpa", "model.onnx", "image.png")
    assert code == 2
    assert "no such command 'heatmpa'; did you mean heatmap?" in output


def test_onnx_files_are_recognised_by_content(tmp_path: Path) -> None:
    exported = tmp_path / "SHAPES.ONNX"
    fc2conv.export_model("shapes", tmp_path / "shapes.onnx", check=False)
    (tmp_path / "shapes.onnx").rename(exported)
    renamed = tmp_path / "shapes.model"
    renamed.write_bytes(exported.read_bytes())
    image = tmp_path / "scene.png"
    Image.fromarray(np.full((80, 90, 3), 200, np.uint8)).save(image)
    for model in (exported, renamed):
        code, output = run(
            "heatmap", str(model), str(image), "--out", str(tmp_path / "h.png"), "--force"
        )
        assert code == 0, output
    not_onnx = tmp_path / "notes.onnx"
    not_onnx.write_text("hello")
    code, output = run("heatmap", str(not_onnx), str(image), "--out", str(tmp_path / "n.png"))
    assert code == 1 and "notes.onnx is not an ONNX model" in output


@pytest.mark.parametrize("how", ["ctrl-c", "kill"])
def test_ctrl_c_or_kill_stops_the_export_once_and_leaves_nothing(tmp_path: Path, how: str) -> None:
    out = tmp_path / "shapes.onnx"
    process = subprocess.Popen(
        [sys.executable, "-m", "fc2conv", "shapes", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # a shell that starts jobs in the background hands them SIGINT ignored, and Python
        # then never raises KeyboardInterrupt: give the command the default, as a terminal does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stderr is not None
    for line in process.stderr:  # wait until the child process is at work, however busy
        if "loading shapes" in line:  # the machine is: its next step is converting
            break
    time.sleep(0.5)
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    else:
        process.terminate()  # SIGTERM to the command alone, as kill and timeout send
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    assert errors.count("interrupted; nothing was written") == 1, errors
    assert "Aborted" not in errors and "Traceback" not in errors
    time.sleep(1)  # a PyTorch process left running would still be writing
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_is_one_line() -> None:
    from fc2conv.cli.options import handles_errors

    @click.command()
    @handles_errors
    def write() -> None:
        raise OSError(28, "No space left on device", "out/b.png")

    result = CliRunner().invoke(write, [])
    assert result.exit_code == 1
    assert result.output == "error: No space left on device: out/b.png\n"


def test_training_the_bundled_model_does_not_replace_the_shipped_weights(
    tmp_path: Path, monkeypatch
) -> None:
    from fc2conv.shapes.spec import WEIGHTS

    shipped = WEIGHTS.read_bytes()
    monkeypatch.chdir(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "fc2conv.shapes", "--steps", "2"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "shapes.safetensors").stat().st_size > 0
    assert WEIGHTS.read_bytes() == shipped
