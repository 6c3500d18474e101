"""Outputs never destroy inputs or each other; nonsense parameters are refused by name."""

import os
import shutil
from pathlib import Path

import pytest
from helpers import FIXTURES, digest

from core.cli import main
from core.imagery.labeller import LabelParams, clean_stale_partials, label_raster


def run(raster, out, *extra):
    return main(["label", str(raster), "--out", str(out), "--gsd", "5", "--tile", "64", *extra])


@pytest.mark.parametrize("case", ["tif_is_input", "gpkg_is_csv", "gpkg_is_tif", "out_is_folder",
                                  "summary_is_tif", "out_is_input"])
def test_clashing_outputs_are_refused_before_any_work(raster, tmp_path, capsys, case):
    before = digest(raster)
    args = {
        "tif_is_input": (tmp_path / "o.gpkg", "--tif", str(raster)),
        "gpkg_is_csv": (tmp_path / "x.csv",),
        "gpkg_is_tif": (tmp_path / "x.gpkg", "--tif", str(tmp_path / "x.gpkg")),
        "out_is_folder": (tmp_path / "folder.gpkg",),
        "summary_is_tif": (tmp_path / "o.gpkg", "--tif", str(tmp_path / "o.tif"),
                           "--summary", str(tmp_path / "o.tif")),
        "out_is_input": (raster,),
    }[case]
    if case == "out_is_folder":
        (tmp_path / "folder.gpkg").mkdir()
    listing = sorted(os.listdir(tmp_path))
    assert run(raster, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert digest(raster) == before
    assert sorted(os.listdir(tmp_path)) == listing  # nothing written, nothing removed


@pytest.mark.parametrize(("flags", "message"), [
    (["--gsd", "nan"], "scale"), (["--gsd", "inf"], "scale"), (["--gsd", "0"], "scale"),
    (["--gsd", "-3"], "scale"), (["--stride", "0"], "stride"), (["--max-tiles", "0"], "tile limit"),
    (["--tile", "100000"], "tile size"), (["--tile", "8"], "tile size"),
])
def test_nonsense_numbers_are_refused_by_name(raster, tmp_path, capsys, flags, message):
    out = tmp_path / "o.gpkg"
    assert main(["label", str(raster), "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_many_labels_get_a_wide_class_raster(tmp_path):
    from osgeo import gdal

    from core.model.engine import Engine

    labels = [f"class number {i}" for i in range(300)]
    p = LabelParams(str(FIXTURES / "rgbn_clip.tif"), str(tmp_path / "m.gpkg"), out_tif=str(tmp_path / "m.tif"),
                    gsd=5, tile=128, labels=labels)
    label_raster(p, Engine.load(user_kb=False, views=1))
    ds = gdal.Open(str(tmp_path / "m.tif"))
    band = ds.GetRasterBand(1)
    assert band.DataType == gdal.GDT_UInt16 and band.GetNoDataValue() == 65535
    ids = band.ReadAsArray()
    assert ids.max() < 300 and len(band.GetCategoryNames()) == 300


def test_partial_files_of_killed_runs_are_cleaned(tmp_path):
    dead = 2 ** 22 + 12345  # above the default pid_max: no such process
    stale = tmp_path / f".o.partial-{dead}.gpkg"
    stale.write_bytes(b"x")
    live = tmp_path / f".o.partial-{os.getpid()}.gpkg"
    live.write_bytes(b"x")
    other = tmp_path / ".unrelated.partial-1.gpkg"
    other.write_bytes(b"x")
    assert clean_stale_partials(str(tmp_path / "o.gpkg")) == [str(stale)]
    assert not stale.exists() and live.exists() and other.exists()


def test_sixteen_bit_png_is_stretched_not_white(tmp_path):
    import numpy as np
    from PIL import Image

    from core.cli.predict import read_image

    ramp = np.tile(np.linspace(2000, 30000, 64), (64, 1)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "dn.png")
    rgb = read_image(str(tmp_path / "dn.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (64, 64, 3)
    assert rgb[:, :5].mean() < 30 and rgb[:, -5:].mean() > 225  # a ramp, not saturated white


def test_huge_image_is_refused_with_a_message(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    Image.fromarray(np.zeros((4200, 4200), np.uint8)).save(tmp_path / "big.png")
    assert main(["classify", str(tmp_path / "big.png")]) == 2
    err = capsys.readouterr().err
    assert "more than one scene" in err and "core label" in err and "Traceback" not in err


_INT8_SHIPS = (Path(__file__).resolve().parent.parent / "resources/models/experts.int8.onnx").is_file()


# The default engine ("auto") loads the int8 experts on CPU where they ship, else the float ones.
@pytest.mark.parametrize("name, precision", [
    ("experts.onnx", "float32"), ("experts.int8.onnx" if _INT8_SHIPS else "experts.onnx", "auto")])
@pytest.mark.parametrize("damage", ["truncate", "flip", "no_checksums"])
def test_damaged_model_files_are_refused_at_load(tmp_path, damage, name, precision):
    """The file an engine is about to load is checked (the float experts for a float32 engine,
    the int8 ones for the default engine on CPU), before onnxruntime parses it."""
    import json

    from core.errors import ModelError
    from core.model.engine import Engine
    from core.setup.paths import MODEL_DIR

    models = tmp_path / "models"
    shutil.copytree(MODEL_DIR, models)
    experts = models / name
    data = bytearray(experts.read_bytes())
    if damage == "truncate":
        experts.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        data[len(data) // 2] ^= 0x01  # one bit of one weight
        experts.write_bytes(data)
    else:
        meta = json.loads((models / "model.json").read_text())
        del meta["files_sha256"]
        (models / "model.json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="checksum|checksums"):
        Engine.load(models, user_kb=False, precision=precision)


def test_huge_plans_need_an_explicit_flag(tmp_path, capsys):
    from helpers import huge_vrt

    vrt = huge_vrt(tmp_path / "huge.vrt")
    assert main(["label", vrt, "--out", str(tmp_path / "h.gpkg"), "--gsd", "5", "--tile", "32"]) == 2
    err = capsys.readouterr().err
    assert "9,765,625 tiles" in err and "--allow-large" in err
    assert not (tmp_path / "h.gpkg").exists()
