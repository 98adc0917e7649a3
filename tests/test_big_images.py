"""Images too large to read whole: a JPEG decodes at a reduced size whatever PIL's
decompression-bomb limit says; another format above ``max_pixels`` is refused naming its size
and the option; in a folder run every unreadable image is one recorded error and the run goes
on."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fc2conv.cli import main
from fc2conv.errors import Fc2ConvError
from fc2conv.run.images import read_image


def _photo(path, width, height, fmt):
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (height // 50, width // 50, 3), dtype=np.uint8)
    Image.fromarray(small).resize((width, height)).save(path, fmt)
    return path


def test_a_large_jpeg_decodes_reduced_past_pils_bomb_limit(tmp_path, monkeypatch) -> None:
    path = _photo(tmp_path / "big.jpg", 3000, 2000, "JPEG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000_000)  # PIL would refuse at 2 M
    with pytest.raises(Image.DecompressionBombError):
        Image.open(path)
    pixels, size = read_image(path, max_size=300, max_pixels=1_000_000)
    assert size == (2000, 3000) and pixels.shape == (200, 300, 3)
    assert Image.MAX_IMAGE_PIXELS == 1_000_000  # PIL's own setting is left as it was


def test_a_large_png_is_refused_with_its_size_and_the_option(tmp_path) -> None:
    path = _photo(tmp_path / "big.png", 3000, 2000, "PNG")
    with pytest.raises(Fc2ConvError, match=r"3000×2000 PNG image decodes to 6,000,000 pixels"):
        read_image(path, max_size=300, max_pixels=1_000_000)
    with pytest.raises(Fc2ConvError, match="pass --max-pixels 6000000"):
        read_image(path, max_size=300, max_pixels=1_000_000)
    pixels, _ = read_image(path, max_size=300, max_pixels=6_000_000)
    assert pixels.shape == (200, 300, 3)


def test_scaling_8_bit_pixels_before_floats_changes_no_value(tmp_path) -> None:
    """The reduced decode path (PIL resizes the 8-bit image) equals scaling the float image."""
    from fc2conv.run.images import load_image, resize

    path = _photo(tmp_path / "p.png", 1000, 700, "PNG")
    pixels, _ = read_image(path, max_size=256)
    expected = resize(load_image(path), pixels.shape[:2])
    assert np.array_equal(pixels, expected)


def test_a_folder_run_records_unreadable_images_and_goes_on(shapes_onnx, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    _photo(folder / "big.png", 3000, 2000, "PNG")
    _photo(folder / "fine.png", 320, 240, "PNG")
    (folder / "cut.png").write_bytes((folder / "fine.png").read_bytes()[:300])
    jsonl = tmp_path / "out.jsonl"
    done = CliRunner().invoke(
        main,
        ["detect", str(shapes_onnx), str(folder), "--jsonl", str(jsonl), "--max-pixels", "10**6"],
    )
    assert done.exit_code == 2 and "--max-pixels" in done.output  # not a number
    done = CliRunner().invoke(
        main,
        ["detect", str(shapes_onnx), str(folder), "--jsonl", str(jsonl), "--max-pixels", "1000000"],
    )
    assert done.exit_code == 1, done.output
    records = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, jsonl.open())}
    assert sorted(records) == ["big.png", "cut.png", "fine.png"]
    assert records["fine.png"]["error"] is None
    assert "6,000,000 pixels" in records["big.png"]["error"]
    assert "cannot read image" in records["cut.png"]["error"]
    assert "2 of 3 images failed" in done.output and "Traceback" not in done.output


def test_any_decoder_failure_is_that_images_error(shapes_onnx, tmp_path, monkeypatch) -> None:
    """Whatever a decoder raises (not only PIL's OSError) stays with its image."""
    import fc2conv.run.batch as batch

    good = _photo(tmp_path / "good.png", 320, 240, "PNG")
    bad = _photo(tmp_path / "bad.png", 320, 240, "PNG")
    real = batch.read_image

    def read(source, *args):
        if str(source).endswith("bad.png"):
            raise RuntimeError("decoder exploded")
        return real(source, *args)

    monkeypatch.setattr(batch, "read_image", read)
    results = list(batch.detect_many(shapes_onnx, [bad, good]))
    assert [r.ok for r in results] == [False, True]
    assert results[0].error == f"cannot read image {bad}: decoder exploded"


def test_resume_refuses_another_model_file_or_other_settings(shapes_onnx, tmp_path) -> None:
    """Records name the model file's content and every setting that changes results: a resumed
    run with another file (here the same model with one more metadata entry) or another
    --scales is refused, naming what differs; the same run resumes."""
    import onnx

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(2):
        _photo(folder / f"p{i}.png", 200 + 40 * i, 160, "PNG")
    other = tmp_path / "other.onnx"
    proto = onnx.load(str(shapes_onnx))
    onnx.helper.set_model_props(
        proto, {"note": "a copy", **{p.key: p.value for p in proto.metadata_props}}
    )
    onnx.save(proto, str(other))
    jsonl = tmp_path / "run.jsonl"

    def detect(model, *extra):
        args = ["detect", str(model), str(folder), "--jsonl", str(jsonl), *extra]
        return CliRunner().invoke(main, args)

    assert detect(shapes_onnx).exit_code == 0
    record = json.loads(jsonl.read_text().splitlines()[0])
    assert record["run"]["model_sha256"] and record["run"]["precision"] == "fp32"
    refused = detect(other, "--resume")
    assert refused.exit_code == 1 and "model_sha256" in refused.output, refused.output
    refused = detect(shapes_onnx, "--resume", "--scales", "1.0")
    assert (
        refused.exit_code == 1
        and "with scales" in refused.output
        and "has scales 1.0" in (refused.output)
    ), refused.output
    resumed = detect(shapes_onnx, "--resume")
    assert resumed.exit_code == 0 and "2 of 2 images are done" in resumed.output
