"""Many images: collecting them, results per image in order with errors recorded, JSON Lines,
COCO, pictures, --resume, and an interrupted run that leaves a valid file."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import fc2conv
from fc2conv.cli import main
from fc2conv.run.batch import collect_images
from fc2conv.shapes.scenes import draw_scene


@pytest.fixture(scope="module")
def collection(tmp_path_factory) -> Path:
    """Five scenes (PNG and JPEG, one in a sub-folder), a broken file and a too-small image."""
    folder = tmp_path_factory.mktemp("images")
    (folder / "sub").mkdir()
    for seed in range(5):
        scene = draw_scene(seed, width=200, height=150)
        name = (
            f"sub/scene{seed}.png" if seed == 4 else f"scene{seed}.{'jpg' if seed % 2 else 'png'}"
        )
        Image.fromarray(scene.image).save(folder / name)
    (folder / "broken.png").write_bytes(b"not an image")
    Image.new("RGB", (20, 20)).save(folder / "tiny.png")
    (folder / "notes.txt").write_text("not an image, not collected")
    return folder


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_collect_files_folders_globs_and_lists(collection, tmp_path) -> None:
    found = collect_images([collection])
    assert [p.name for p in found] == [
        "broken.png",
        "scene0.png",
        "scene1.jpg",
        "scene2.png",
        "scene3.jpg",
        "scene4.png",
        "tiny.png",
    ]  # fmt: skip (sorted by path: sub/scene4.png before tiny.png)
    assert [p.name for p in collect_images([str(collection / "**" / "*.jpg")])] == [
        "scene1.jpg",
        "scene3.jpg",
    ]
    listing = tmp_path / "list.txt"
    listing.write_text(f"{collection / 'scene0.png'}\nmissing.png\n\n")
    assert collect_images([f"@{listing}"]) == [collection / "scene0.png", tmp_path / "missing.png"]
    (tmp_path / "empty").mkdir()
    for bad, message in (
        (tmp_path / "empty", "holds no images"),
        (str(tmp_path / "*.jpg"), "no file matches"),
        (tmp_path / "gone.png", "does not exist"),
        ("@" + str(tmp_path / "nolist.txt"), "cannot read the image list"),
    ):
        with pytest.raises(fc2conv.Fc2ConvError, match=message):
            collect_images([bad])


def test_detect_many_in_order_with_errors_recorded(shapes_onnx, collection) -> None:
    paths = collect_images([collection])
    results = list(fc2conv.detect_many(shapes_onnx, paths))
    assert [r.path for r in results] == paths
    failed = {r.path.name: r.error for r in results if not r.ok}
    assert set(failed) == {"broken.png", "tiny.png"}
    assert "cannot read image" in failed["broken.png"]
    assert "smaller than its 64×64 minimum" in failed["tiny.png"]
    for result in results:
        if result.ok:  # the same as one image at a time
            alone = fc2conv.detect(shapes_onnx, result.path)
            np.testing.assert_array_equal(alone.boxes, result.result.boxes)
            assert result.size == (150, 200) and result.seconds > 0


def test_folder_run_writes_jsonl_coco_and_pictures(shapes_onnx, collection, tmp_path) -> None:
    jsonl, coco, pictures = tmp_path / "found.jsonl", tmp_path / "coco.json", tmp_path / "pics"
    code, output = cli(
        "detect", str(shapes_onnx), str(collection), "--jsonl", str(jsonl), "--coco", str(coco),
        "--out-dir", str(pictures),
    )  # fmt: skip
    assert code == 1, output  # two images failed
    assert "7 images: 5 succeeded, 2 failed" in output
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(records) == 7 and {r["model"] for r in records} == {"shapes"}
    ok = [r for r in records if r["error"] is None]
    assert len(ok) == 5 and all(r["detections"] for r in ok)
    data = json.loads(coco.read_text())
    assert len(data["images"]) == 5
    assert len(data["annotations"]) == sum(len(r["detections"]) for r in ok)
    assert {c["name"] for c in data["categories"]} >= {"circle", "star"}
    width, height = data["annotations"][0]["bbox"][2:]
    assert width > 0 and height > 0
    assert sorted(p.name for p in pictures.iterdir()) == [
        "scene0.png", "scene1.png", "scene2.png", "scene3.png", "sub__scene4.png"
    ]  # fmt: skip

    # --resume skips what is done; a file of another command is refused
    code, output = cli(
        "detect", str(shapes_onnx), str(collection), "--jsonl", str(jsonl), "--resume"
    )
    assert code == 0 and "7 of 7 images are done" in output
    assert len(jsonl.read_text().splitlines()) == 7
    code, output = cli(
        "heatmap", str(shapes_onnx), str(collection), "--jsonl", str(jsonl), "--resume"
    )
    assert code == 1 and "cannot resume" in output and "command 'detect'" in output


def test_heatmap_many_records_the_peaks(shapes_onnx, collection, tmp_path) -> None:
    jsonl = tmp_path / "maps.jsonl"
    code, output = cli(
        "heatmap", str(shapes_onnx), str(collection / "scene0.png"), str(collection / "scene1.jpg"),
        "--jsonl", str(jsonl), "--class", "star", "--scales", "1.0",
    )  # fmt: skip
    assert code == 0, output
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [Path(r["path"]).name for r in records] == ["scene0.png", "scene1.jpg"]
    assert all(set(r["peaks"]) == {"star"} for r in records)


def test_bad_batch_arguments(shapes_onnx, collection, tmp_path) -> None:
    code, output = cli("detect", str(shapes_onnx), str(collection))
    assert code == 2 and "many images need --jsonl" in output
    code, output = cli(
        "detect", str(shapes_onnx), str(collection), "--jsonl", "x.jsonl", "--out", "x.png"
    )
    assert code == 1 and "--out: for a run of one image" in output
    code, output = cli(
        "detect", str(shapes_onnx), str(collection), "--jsonl", str(tmp_path / "r.txt")
    )
    assert code == 1 and "name it .jsonl" in output
    code, output = cli("detect", str(shapes_onnx), str(collection / "scene0.png"))
    assert code == 2 and "one image needs --out PICTURE" in output
    bracketed = tmp_path / "photo[1].png"  # glob characters in the name of one image
    bracketed.write_bytes((collection / "scene0.png").read_bytes())
    code, output = cli("detect", str(shapes_onnx), str(bracketed))
    assert code == 2 and "one image needs --out PICTURE" in output
    picture = str(tmp_path / "x.png")
    code, output = cli("detect", str(shapes_onnx), str(tmp_path / "gone.png"), "--out", picture)
    assert code == 1 and "gone.png does not exist" in output
    code, output = cli("detect", str(tmp_path / "gone.onnx"), str(collection / "scene0.png"),
                       "--out", picture)  # fmt: skip
    assert code == 1 and "gone.onnx does not exist; check the path" in output


def test_pictures_of_same_named_images_differ_and_a_full_out_dir_needs_force(
    shapes_onnx, collection, tmp_path
) -> None:
    images = tmp_path / "images"
    (images / "a").mkdir(parents=True)
    scene = Image.open(collection / "scene0.png")
    scene.save(images / "x.png")
    scene.save(images / "x.jpg")
    scene.save(images / "a" / "b.png")
    scene.save(images / "a__b.png")
    pictures = tmp_path / "pictures"
    code, output = cli("detect", str(shapes_onnx), str(images), "--out-dir", str(pictures))
    assert code == 0, output
    assert sorted(p.name for p in pictures.iterdir()) == [
        "a__b-2.png", "a__b.png", "x.jpg.png", "x.png.png"
    ]  # fmt: skip
    code, output = cli("detect", str(shapes_onnx), str(images), "--out-dir", str(pictures))
    assert code == 1 and "holds files; pass --force" in output
    code, output = cli(
        "detect", str(shapes_onnx), str(images), "--out-dir", str(pictures), "--force", "--quiet"
    )
    assert code == 0, output


def test_resume_matches_paths_however_written_and_keeps_the_settings(
    shapes_onnx, collection, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(collection)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# scenes of the first run\n{collection / 'scene0.png'}\n\n")
    jsonl = tmp_path / "run.jsonl"
    code, output = cli("detect", str(shapes_onnx), f"@{listing}", "--jsonl", str(jsonl))
    assert code == 0 and "1 images: 1 succeeded" in output  # the comment is no image
    coco = tmp_path / "coco.json"  # given by mistake: refused, and left as it is
    coco.write_text('{"images": [], "annotations": []}')  # no newline, as COCO files end
    code, output = cli("detect", str(shapes_onnx), "scene0.png", "--jsonl", str(coco), "--resume")
    assert code == 1 and "is not an image's result" in output
    assert coco.read_text() == '{"images": [], "annotations": []}'
    code, output = cli(
        "detect", str(shapes_onnx), "scene0.png", "scene2.png", "--jsonl", str(jsonl), "--resume"
    )  # the same image by a relative path
    assert code == 0 and "1 of 2 images are done" in output
    assert len(jsonl.read_text().splitlines()) == 2
    code, output = cli(
        "detect", str(shapes_onnx), "scene3.jpg", "--jsonl", str(jsonl), "--resume",
        "--score-threshold", "0.9",
    )  # fmt: skip
    assert code == 1 and "score_threshold 0.6, this run has score_threshold 0.9" in output
    with open(jsonl, "a", encoding="utf-8") as file:  # a run killed while writing a line
        file.write('{"path": "scene3.jpg", "comm')
    code, output = cli("detect", str(shapes_onnx), "scene3.jpg", "--jsonl", str(jsonl), "--resume")
    assert code == 0 and "removed an unfinished last line" in output
    assert [Path(json.loads(line)["path"]).name for line in jsonl.read_text().splitlines()] == [
        "scene0.png", "scene2.png", "scene3.jpg"
    ]  # fmt: skip


def test_interrupted_run_leaves_valid_jsonl_and_resumes(shapes_onnx, collection, tmp_path) -> None:
    many = tmp_path / "many"
    many.mkdir()
    source = (collection / "scene0.png").read_bytes()
    for index in range(60):
        (many / f"s{index:03d}.png").write_bytes(source)
    jsonl = tmp_path / "run.jsonl"
    command = [
        sys.executable,
        "-m",
        "fc2conv",
        "detect",
        str(shapes_onnx),
        str(many),
        "--jsonl",
        str(jsonl),
    ]
    process = subprocess.Popen(
        command,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (
        not jsonl.exists() or len(jsonl.read_text().splitlines()) < 3
    ):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 130, errors
    assert "interrupted after" in errors and "--resume" in errors
    lines = jsonl.read_text().splitlines()
    assert 3 <= len(lines) < 60
    assert all(json.loads(line)["error"] is None for line in lines)  # whole lines only
    done = subprocess.run([*command, "--resume", "--quiet"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    paths = [json.loads(line)["path"] for line in jsonl.read_text().splitlines()]
    assert len(paths) == len(set(paths)) == 60


@pytest.mark.ray
def test_ray_run_gives_the_plain_run_results(shapes_onnx, collection, tmp_path) -> None:
    """The same folder on a local Ray cluster (2 CPUs, two actors): per image, the same
    record as the plain run (timings aside), failures included."""
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    plain, on_ray = tmp_path / "plain.jsonl", tmp_path / "ray.jsonl"
    code, output = cli("detect", str(shapes_onnx), str(collection), "--jsonl", str(plain))
    assert code == 1, output
    ray.init(num_cpus=2, log_to_driver=False, include_dashboard=False)
    try:
        code, output = cli(
            "detect", str(shapes_onnx), str(collection), "--jsonl", str(on_ray), "--ray"
        )
    finally:
        ray.shutdown()
    assert code == 1 and "7 images: 5 succeeded, 2 failed" in output, output

    def by_path(path: Path) -> dict[str, dict]:
        records = [json.loads(line) for line in path.read_text().splitlines()]
        return {r["path"]: {k: v for k, v in r.items() if k != "seconds"} for r in records}

    assert by_path(on_ray) == by_path(plain)


def test_ray_missing_says_how_to_install(shapes_onnx, collection, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    code, output = cli(
        "detect", str(shapes_onnx), str(collection), "--jsonl", str(tmp_path / "r.jsonl"), "--ray"
    )
    assert code == 1 and "Ray is not installed" in output and 'pip install -e ".[ray]"' in output


def test_run_command_is_the_command_in_one_call(shapes_onnx, collection, tmp_path) -> None:
    jsonl, pictures = tmp_path / "found.jsonl", tmp_path / "pics"
    summary = fc2conv.run_command(
        "detect", shapes_onnx, [collection], {"score_threshold": 0.6},
        outputs={"jsonl": str(jsonl), "out_dir": pictures},
    )  # fmt: skip
    assert (summary.succeeded, summary.failed) == (5, 2)
    with pytest.raises(fc2conv.Fc2ConvError, match="2 of 7 images failed"):
        summary.check()
    assert len(jsonl.read_text().splitlines()) == 7 and len(list(pictures.iterdir())) == 5

    picture, data = tmp_path / "one.png", tmp_path / "one.json"
    image = [collection / "scene0.png"]
    lines = fc2conv.run_command(
        "detect", shapes_onnx, image, {}, outputs={"out": picture, "json": data}
    )
    assert lines[0].startswith("wrote") and picture.is_file()
    assert len(json.loads(data.read_text())["detections"]) == len(lines) - 1 > 0

    # the arguments are checked before any model opens: no model file is needed to refuse them
    with pytest.raises(fc2conv.errors.UsageError, match="many images need --jsonl"):
        fc2conv.run_command("detect", tmp_path / "missing.onnx", [collection], {})
    with pytest.raises(fc2conv.Fc2ConvError, match="--maps writes a heatmap"):
        fc2conv.run_command("detect", "x.onnx", image, {}, outputs={"json": data, "maps": data})
