"""Issue 29's hostile-sweep findings: lose nothing, no traceback, refuse nonsense. Each test fails
on the code before the fix (the cases are the sweep's own)."""

from __future__ import annotations

import multiprocessing
import shutil

import numpy as np
import pytest
from helpers import FIXTURES, digest

from core.cli import main
from core.errors import RsSageError


def label(raster, out, *extra):
    return main(["label", str(raster), "--out", str(out), "--gsd", "5", "--tile", "64", *extra])


# ---- data lost ------------------------------------------------------------------------------
def test_default_summary_never_overwrites_the_labels_file(raster, tmp_path, capsys):
    labels = tmp_path / "labels2.csv"
    labels.write_text("water\nforest\nurban area\n")
    before = digest(labels)
    assert label(raster, tmp_path / "labels2.gpkg", "--labels-file", str(labels)) == 2
    assert "labels2.csv" in capsys.readouterr().err
    assert digest(labels) == before
    assert label(raster, tmp_path / "o.gpkg", "--labels-file", str(labels), "--summary", str(labels)) == 2
    assert digest(labels) == before


def test_an_existing_multi_layer_geopackage_is_not_replaced(raster, tmp_path, capsys):
    from osgeo import ogr, osr

    gpkg = tmp_path / "project.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    lyr = ds.CreateLayer("roads", srs, ogr.wkbLineString)
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetGeometry(ogr.CreateGeometryFromWkt("LINESTRING (0 0, 1 1)"))
    lyr.CreateFeature(f)
    f = lyr = None  # features and layers die before their data source (else a double free at exit)
    ds = None
    before = digest(gpkg)
    assert label(raster, gpkg) == 2
    assert "roads" in capsys.readouterr().err
    assert digest(gpkg) == before


def _user_kb(tmp_path):
    from core.model.knowledge import KnowledgeBase, UserKnowledge

    return UserKnowledge(tmp_path / "kb"), KnowledgeBase.load(user_dir=False).entries


def test_kb_add_keeps_lines_it_cannot_parse_byte_for_byte(tmp_path):
    uk, shipped = _user_kb(tmp_path)
    uk.add([{"level": "scene", "name": "salt pan", "text": "white evaporation ponds"}], shipped)
    path = tmp_path / "kb" / "entries.jsonl"
    odd = b'{"id": "x", "level": "scene",}\n{"level": "scene", "name": "no id", "text": "t"}\ncaf\xe9 latin-1\n'
    path.write_bytes(path.read_bytes() + odd)
    kept = path.read_bytes()
    uk.add([{"level": "scene", "name": "rice terrace", "text": "stepped flooded fields"}], shipped)
    assert path.read_bytes().startswith(kept)
    entries, emb = uk.load()
    assert [e.name for e in entries] == ["salt pan", "rice terrace"] and len(emb) == 2


def _add_one(args):
    folder, name = args
    from core.model.knowledge import KnowledgeBase, UserKnowledge

    UserKnowledge(folder).add([{"level": "object", "name": name, "text": f"a {name} seen from above"}],
                              KnowledgeBase.load(user_dir=False).entries)


def test_concurrent_kb_add_keeps_every_entry(tmp_path):
    from core.model.text_encoder import shared_encoder

    shared_encoder().encode(["warm up"])  # forked workers share the loaded encoder
    ctx = multiprocessing.get_context("fork")
    folder = tmp_path / "kb"
    names = []
    with ctx.Pool(4) as pool:
        for rep in range(20):
            batch = [(folder, f"thing {rep} {i}") for i in range(4)]
            names += [n for _, n in batch]
            pool.map(_add_one, batch)
    from core.model.knowledge import UserKnowledge

    entries, emb = UserKnowledge(folder).load()
    assert sorted(e.name for e in entries) == sorted(names)
    assert emb.shape == (80, 384)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "pickled", "wrong_width"])
def test_a_damaged_user_embeddings_file_is_rebuilt_with_a_warning(tmp_path, damage, caplog):
    uk, shipped = _user_kb(tmp_path)
    uk.add([{"level": "scene", "name": "salt pan", "text": "white evaporation ponds"}], shipped)
    emb_path = tmp_path / "kb" / "embeddings.npy"
    good = np.load(emb_path)
    if damage == "garbage":
        emb_path.write_bytes(b"\x00garbage" * 20)
    elif damage == "truncated":
        emb_path.write_bytes(emb_path.read_bytes()[:100])
    elif damage == "pickled":
        np.save(emb_path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    else:
        np.save(emb_path, np.zeros((1, 17), np.float32))
    from core.model.knowledge import KnowledgeBase

    with caplog.at_level("WARNING"):
        kb = KnowledgeBase.load(user_dir=tmp_path / "kb")
    assert "embeddings.npy" in caplog.text
    assert np.allclose(np.load(emb_path), good, atol=1e-5)
    assert any(e.name == "salt pan" for e in kb.entries)


# ---- refused, not guessed ---------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--labels", ""], "no class names"),
    (["--labels", ",,, ;"], "no class names"),
])
def test_empty_label_lists_are_refused(raster, tmp_path, capsys, argv, message):
    assert label(raster, tmp_path / "o.gpkg", *argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o.gpkg").exists()


def test_binary_labels_file_and_empty_output_name_are_refused(raster, tmp_path, capsys):
    binary = tmp_path / "labels.bin"
    binary.write_bytes(bytes(range(256)))
    assert label(raster, tmp_path / "o.gpkg", "--labels-file", str(binary)) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert main(["label", str(raster), "--out", ""]) == 2
    assert "empty" in capsys.readouterr().err


def test_outputs_on_system_folders_are_refused(raster, capsys):
    assert main(["label", str(raster), "--out", "/proc/rs_sage.gpkg"]) == 2
    assert "system folder" in capsys.readouterr().err


def test_classify_top_k_zero_is_refused(tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "a.png"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(img)
    assert main(["classify", str(img), "--top-k", "0"]) == 2
    assert "--top-k" in capsys.readouterr().err


@pytest.mark.parametrize("call", ["top_k_float", "label_none", "label_nul"])
def test_python_api_wrong_types_are_clear_errors(call):
    from core.model.engine import Engine

    eng = Engine.load(user_kb=False)
    img = np.full((64, 64, 3), 120, np.uint8)
    with pytest.raises(RsSageError):
        if call == "top_k_float":
            eng.classify([img], ["water"], top_k=2.5)
        elif call == "label_none":
            eng.classify([img], ["water", None])
        else:
            eng.classify([img], ["wa\0ter"])


@pytest.mark.parametrize("argv, message", [
    (["kb", "search", ""], "empty"),
    (["kb", "search", "harbour", "-k", "0"], "-k"),
    (["kb", "search", "harbour", "-k", "-3"], "-k"),
])
def test_kb_search_nonsense_is_refused(argv, message, capsys):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_user_kb_that_is_a_file_or_system_folder_is_refused(tmp_path, capsys):
    f = tmp_path / "file.tif"
    f.write_bytes(b"II*\x00")
    assert main(["kb", "add", "--level", "scene", "--name", "x", "--text", "y", "--user-kb", str(f)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["kb", "search", "harbour", "--user-kb", "/proc"]) == 2
    assert "system folder" in capsys.readouterr().err


# ---- wrong, silently -> refused -------------------------------------------------------------------
@pytest.mark.parametrize("question", [
    "Is there a florp glimbnax here?", "How much of this area is qwzx?", "Are there any zorbles?",
    "How many blorfs are there?", "Where is the snargle?",
    "Is there more water than water?",
    "Is there not a harbour here?", "Aren't there any boats?", "Are there no trees here?", "Isn't this a port?",
    "Is the roof red?", "Is there a red car?", "What colour are the roofs?", "Are the fields yellow?",
    "Are the buildings damaged?", "Is there a flooded field?", "Is the stadium empty?", "Is the bridge broken?",
    "Are the roofs made of metal?", "Is the road paved?", "Is there a wooden bridge?", "Are the houses brick?",
    "Which country is this?", "Is this in France?", "Is this Paris?", "Is this image taken in Brazil?",
    "What city is shown?", "Where on earth is this?", "Which continent is this on?",
])
def test_nonsense_and_unanswerable_questions_are_refused(question):
    from core.questions.question_parse import parse_question

    with pytest.raises(RsSageError):
        parse_question(question)


@pytest.mark.parametrize("question", [
    "Is there a harbour here?", "How many storage tanks are there?", "What type of scene is this?",
    "Is this a rural or an urban area?", "How much of this area is forest?", "Is there more water than farmland?",
    "Where are the storage tanks?", "What is in this region?", "Is there green vegetation?",
    "Are there solar panels?", "Is there a river or not?", "Are there any planes?",
])
def test_supported_wordings_still_answer(question):
    from core.questions.question_parse import parse_question

    assert parse_question(question).type


def test_questions_with_bytes_that_are_not_text_are_refused(capsys):
    from core.questions.question_parse import parse_question

    with pytest.raises(RsSageError):
        parse_question("Is there a harbour\udcff here?")  # a lone surrogate (API), or a non-UTF-8 byte (CLI)
    img = FIXTURES / "rgbn_clip.tif"
    assert main(["ask", str(img), "-q", "Is there a b\udce9ach?"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_api_nonsense_parameters_are_refused(tmp_path):
    from core.imagery.labeller import LabelParams, label_raster
    from core.model.engine import Engine

    with pytest.raises(RsSageError, match="extent"):
        label_raster(LabelParams(str(FIXTURES / "rgbn_clip.tif"), None, extent=(float("nan"),) * 4))
    with pytest.raises(RsSageError, match="tile"):
        label_raster(LabelParams(str(FIXTURES / "rgbn_clip.tif"), None, tile=128.7))
    with pytest.raises(RsSageError, match="raster"):
        label_raster(LabelParams(None, None))
    with pytest.raises(RsSageError, match="bands"):
        label_raster(LabelParams(str(FIXTURES / "rgbn_clip.tif"), None, bands=["1", "2", "3"]))
    with pytest.raises(RsSageError, match="threads"):
        Engine.load(threads=-1)
    with pytest.raises(RsSageError, match="model_dir"):
        Engine.load(model_dir=123)


@pytest.mark.parametrize("item, message", [
    ({"level": "scene", "name": float("nan"), "text": "x"}, "must be text"),
    ({"level": "scene", "name": "sa\0lt", "text": "x"}, "NUL"),
])
def test_kb_names_that_are_not_text_are_refused(tmp_path, item, message):
    from core.errors import KnowledgeBaseError

    uk, shipped = _user_kb(tmp_path)
    with pytest.raises(KnowledgeBaseError, match=message):
        uk.add([item], shipped)


def test_deeply_nested_json_import_is_a_clear_error(tmp_path, capsys):
    f = tmp_path / "deep.json"
    f.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["kb", "import", str(f), "--user-kb", str(tmp_path / "kb")]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_huge_float_values_and_complex_rasters_are_refused(tmp_path):
    from osgeo import gdal

    from core.imagery.labeller import LabelParams, label_raster

    src = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    for name, dtype, scale in (("huge.tif", gdal.GDT_Float64, 1e300), ("cint.tif", gdal.GDT_CInt16, 1)):
        ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / name), 64, 64, 3, dtype)
        ds.SetGeoTransform(src.GetGeoTransform())
        ds.SetProjection(src.GetProjection())
        for b in range(1, 4):
            ds.GetRasterBand(b).WriteArray(np.random.default_rng(b).random((64, 64)) * scale)
        ds = None
        with pytest.raises(RsSageError, match="float32 range|complex"):
            label_raster(LabelParams(str(tmp_path / name), None, gsd=5, tile=32))


def test_gdal_read_errors_are_one_line_and_leave_nothing(tmp_path, capsys):
    """A truncated GeoTIFF and a VRT whose source is missing: one line, exit 2, no output."""
    import subprocess

    full = tmp_path / "full.tif"
    shutil.copy(FIXTURES / "rgbn_clip.tif", full)
    (tmp_path / "trunc.tif").write_bytes(full.read_bytes()[:60000])
    src = tmp_path / "gone.tif"
    shutil.copy(full, src)
    subprocess.run(["gdalbuildvrt", "-q", str(tmp_path / "v.vrt"), str(src)], check=True)
    src.unlink()
    for raster in ("trunc.tif", "v.vrt"):
        out = tmp_path / f"o_{raster}.gpkg"
        assert label(tmp_path / raster, out) == 2
        err = capsys.readouterr().err
        assert "GDAL could not read" in err and "Traceback" not in err
        assert not out.exists() and not list(tmp_path.glob(f".o_{raster}*"))


def test_export_of_a_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"\x80\x04not a checkpoint")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "not an RS-SAGE checkpoint" in err and "Traceback" not in err


def test_api_user_kb_that_is_a_file_is_refused_not_ignored(tmp_path):
    from core.model.engine import Engine

    f = tmp_path / "kb.tif"
    f.write_bytes(b"II*\x00")
    with pytest.raises(RsSageError, match="is a file"):
        Engine.load(user_kb=str(f))
