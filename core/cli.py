"""Argument parsing for ``python -m core``; each sub-command imports its module on use."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from .engine import DEFAULT_VIEWS, VIEW_SETS
from .errors import RsSageError


def _kb(args: argparse.Namespace) -> int:
    from . import kb_cli

    return kb_cli.run(args)


def _classify(args: argparse.Namespace) -> int:
    from .predict_cli import classify

    return classify(args)


def _ask(args: argparse.Namespace) -> int:
    from .predict_cli import ask

    return ask(args)


def _train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    cfg = TrainConfig.from_args(args)
    train(cfg)
    return 0


def _export(args: argparse.Namespace) -> int:
    from .export import export_onnx

    paths = export_onnx(args.checkpoint, args.out)
    print(json.dumps({k: str(v) for k, v in paths.items()}, indent=2))
    return 0


def _eval(args: argparse.Namespace) -> int:
    from .evaluate import run_eval

    return run_eval(args)


def _calibrate(args: argparse.Namespace) -> int:
    from .calibrate import main as calibrate

    return calibrate(args)


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(args)


def _label(args: argparse.Namespace) -> int:
    from .labeller import LARGE_PLAN_TILES, LabelParams, label_raster

    labels = args.labels
    if args.labels_file:
        from .predict_cli import _labels

        labels = _labels(args)
    nodata = None
    if args.nodata is not None:  # like gdal_translate -a_nodata: the value in every band
        from .raster import open_raster

        nodata = {b: [(args.nodata, args.nodata)] for b in range(1, open_raster(args.raster).RasterCount + 1)}
    max_tiles = args.max_tiles
    if max_tiles is None and not args.allow_large:
        max_tiles = LARGE_PLAN_TILES
    params = LabelParams(raster=args.raster, out_gpkg=args.out, out_tif=args.tif, out_summary=args.summary,
                         labels=labels,
                         gsd=args.gsd, tile=args.tile, stride=args.stride, mask=args.mask,
                         bands=args.bands, max_tiles=max_tiles, nodata=nodata)
    last = [-10.0]

    def progress(pct: float) -> None:
        if pct - last[0] >= 10 or pct >= 100:
            last[0] = pct
            print(f"  {pct:5.1f} %", file=sys.stderr, flush=True)

    from .engine import Engine

    res = label_raster(params, engine=Engine.load(views=args.views), progress=progress)
    for note in res.notes:
        print(f"note: {note}", file=sys.stderr)
    print(json.dumps({"tiles": res.tiles, "labelled": res.labelled, "views": args.views,
                      "skipped_nodata": res.skipped_nodata, "skipped_mask": res.skipped_mask,
                      "uncertain": res.uncertain, "notes": res.notes,
                      "gsd_m": round(res.gsd, 3), "seconds": round(res.seconds, 2),
                      "tiles_per_s": round(res.tiles_per_s, 1), "device": res.device,
                      "nodata": res.nodata_rule, "stretch": res.stretch,
                      "outputs": res.outputs, "summary": res.summary}, indent=2))
    return 0


def _data_card(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data_card import write_data_card

    write_data_card(Path(args.out))
    print(f"wrote {args.out}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from .status import plugin_status

    print(plugin_status().as_text())
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import report, run_demo

    _, res = run_demo()
    print(report(res))
    print("(make demo also renders out/demo_map.png with QGIS)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .labeller import LARGE_PLAN_TILES
    p = argparse.ArgumentParser(
        prog="python -m core",
        description="RS-SAGE: offline remote-sensing scene classification and question answering.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    c = add("classify", _classify, "classify image files with a label list (open vocabulary)")
    c.add_argument("images", nargs="+", help="image files (any size, RGB)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--labels", nargs="+", help="class names (default: the 30 AID classes)")
    g.add_argument("--labels-file", help="text file, one class name per line")
    c.add_argument("--top-k", type=int, default=5)
    c.add_argument("--json", action="store_true", help="one JSON object per image")
    c.add_argument("--model-dir", default=None)

    a = add("ask", _ask, "ask an English question about an image")
    a.add_argument("image")
    a.add_argument("--question", "-q", required=True)
    a.add_argument("--json", action="store_true")
    a.add_argument("--model-dir", default=None)

    lb = add("label", _label, "batch-label a raster into a GeoPackage (+ class GeoTIFF)")
    lb.add_argument("raster")
    lb.add_argument("--out", required=True, help="output GeoPackage (one polygon per tile)")
    lb.add_argument("--tif", default=None, help="optional class GeoTIFF (class ids, colour table, category names)")
    lb.add_argument("--summary", default=None, help="per-class area summary, .csv or .json (default: OUT with .csv)")
    lbl = lb.add_mutually_exclusive_group()
    lbl.add_argument("--labels", nargs="+", default=None)
    lbl.add_argument("--labels-file", default=None)
    lb.add_argument("--gsd", type=float, default=None, help="metres per pixel of the tiles")
    lb.add_argument("--tile", type=int, default=224, help="tile size in pixels")
    lb.add_argument("--stride", type=int, default=None, help="tile step in pixels (overlap)")
    lb.add_argument("--mask", default=None, help="polygon file: label only tiles touching it")
    lb.add_argument("--bands", type=int, nargs=3, default=None, help="R G B band numbers")
    lb.add_argument("--max-tiles", type=int, default=None,
                    help=f"refuse plans with more tiles (default {LARGE_PLAN_TILES:,} unless --allow-large)")
    lb.add_argument("--allow-large", action="store_true", help="run plans of any size")
    lb.add_argument("--nodata", type=float, default=None,
                    help="extra nodata value in every band (the file's own nodata, NaN, the mask band and "
                         "a fill collar found along the border are always skipped)")
    lb.add_argument("--views", type=int, choices=sorted(VIEW_SETS), default=DEFAULT_VIEWS,
                    help="rotated views averaged per tile (1 is about 4x faster than the default 4)")

    kb = add("kb", _kb, "build, search and extend the knowledge base")
    kbs = kb.add_subparsers(dest="kb_command", metavar="KB_COMMAND", required=True)
    kbs.add_parser("build", help="regenerate resources/knowledge deterministically")
    s = kbs.add_parser("search", help="top entries for a text query")
    s.add_argument("query")
    s.add_argument("--level", choices=["scene", "object", "attribute", "all"], default="all")
    s.add_argument("-k", type=int, default=5)
    s.add_argument("--user-kb", default=None, help="user knowledge folder (default: QGIS profile)")
    ad = kbs.add_parser("add", help="add one entry to the user knowledge base")
    ad.add_argument("--level", required=True)
    ad.add_argument("--name", required=True)
    ad.add_argument("--text", required=True)
    ad.add_argument("--user-kb", default=None)
    im = kbs.add_parser("import", help="import entries from a JSON or CSV file")
    im.add_argument("file")
    im.add_argument("--user-kb", default=None)
    kbs.add_parser("info", help="counts per level and the manifest")

    t = add("train", _train, "train the model (checkpoints and resumes)")
    t.add_argument("--out", default=".checkpoints/full")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--variant", default="full")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--input-size", type=int, default=160, help="model input in px (multiple of 32)")
    t.add_argument("--frozen-blocks", type=int, default=None,
                   help="backbone blocks kept frozen and cached (default: through stage 3, 5 for Lite0)")
    t.add_argument("--cache", default=None,
                   help="feature cache folder (default .cache/train[SIZE][_frozenN])")
    t.add_argument("--init-from", default=None, help="model.pt to fine-tune from")
    t.add_argument("--lr-scale", type=float, default=1.0, help="multiplies both learning rates")

    e = add("export", _export, "export a checkpoint to the two ONNX files")
    e.add_argument("--checkpoint", default=".checkpoints/full/model.pt")
    e.add_argument("--out", default=None)

    ev = add("eval", _eval, "evaluate on the RSICD test split of AID")
    ev.add_argument("--model-dir", default=None)
    ev.add_argument("--limit", type=int, default=None)
    ev.add_argument("--views", type=int, choices=sorted(VIEW_SETS), default=DEFAULT_VIEWS,
                    help="rotated views averaged per image (the shipped engine uses the default)")
    ev.add_argument("--checkpoint", default=".checkpoints/full/model.pt",
                    help="torch checkpoint of the shipped model, for the torch-vs-onnxruntime check "
                         "('' to skip; skipped with a note when the file is missing)")
    ev.add_argument("--out", default="docs/results.md")
    ev.add_argument("--ood", action="store_true",
                    help="only the out-of-domain suite (sensor shift, label wording, real rasters) -> docs/ood.json")
    ev.add_argument("--ood-tag", default="",
                    help="suffix of the OOD result file (e.g. 'before' for a previous model's numbers)")
    ev.add_argument("--ablations", action="store_true",
                    help="also (re)train and test the ablation variants (slow; resumes)")

    cal = add("calibrate", _calibrate, "choose the 'uncertain' score threshold on validation images")
    cal.add_argument("--model-dir", default=None)
    cal.add_argument("--limit", type=int, default=None)
    cal.add_argument("--report", default="docs/uncertainty.json")
    cal.add_argument("--dry-run", action="store_true")

    b = add("bench", _bench, "speed benchmarks (retrieval, engine)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--section", choices=["all", "retrieval", "engine", "labeller", "big"], default="all")

    dc = add("data-card", _data_card, "write the data card of the generated VQA set")
    dc.add_argument("--out", default="docs/data.md")

    add("status", _status, "what is installed and ready")
    add("demo", _demo, "the main job's labelling step on the sample raster (make demo adds the map)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except RsSageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
