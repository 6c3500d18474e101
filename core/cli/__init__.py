"""Argument parsing for ``python -m core``; each sub-command imports its module on use."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from ..errors import RsSageError
from ..model.engine import DEFAULT_VIEWS, VIEW_SETS


def _kb(args: argparse.Namespace) -> int:
    from . import kb as kb_cli

    return kb_cli.run(args)


def _classify(args: argparse.Namespace) -> int:
    from .predict import classify

    return classify(args)


def _ask(args: argparse.Namespace) -> int:
    from .predict import ask

    return ask(args)


def _label(args: argparse.Namespace) -> int:
    from ..imagery.labeller import LARGE_PLAN_TILES, LabelParams, label_raster
    from .predict import _labels

    labels = _labels(args)
    nodata = None
    if args.nodata is not None:  # like gdal_translate -a_nodata: the value in every band
        from ..imagery.raster import open_raster

        nodata = {b: [(args.nodata, args.nodata)] for b in range(1, open_raster(args.raster).RasterCount + 1)}
    max_tiles = args.max_tiles
    if max_tiles is None and not args.allow_large:
        max_tiles = LARGE_PLAN_TILES
    params = LabelParams(raster=args.raster, out_gpkg=args.out, out_tif=args.tif, out_summary=args.summary,
                         labels=labels,
                         gsd=args.gsd, tile=args.tile, stride=args.stride, mask=args.mask,
                         bands=args.bands, max_tiles=max_tiles, nodata=nodata, scheduler=args.dask, cog=args.cog,
                         protect=(args.labels_file,) if args.labels_file else (), embeddings=args.embeddings)
    last = [-10.0]

    def progress(pct: float) -> None:
        if pct - last[0] >= 10 or pct >= 100:
            last[0] = pct
            print(f"  {pct:5.1f} %", file=sys.stderr, flush=True)

    from ..model.engine import Engine

    if args.dask:  # a scheduler that is not there is said in seconds, before the model loads
        from ..scale_out.runner import check_scheduler

        check_scheduler(args.dask)
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


def _status(args: argparse.Namespace) -> int:
    from ..setup.status import plugin_status

    print(plugin_status().as_text())
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from ..setup.doctor import as_text, report

    rep = report(with_engine=not args.no_engine)
    print(json.dumps(rep, indent=2) if args.json else as_text(rep))
    return 0


def _deps(args: argparse.Namespace) -> int:
    from ..setup import deps
    from ..setup.paths import deps_base

    if args.deps_command == "wheelhouse":
        wheels = deps.wheelhouse(args.out, args.platform, args.python_version, args.numpy, args.gpu)
        size = sum(w.stat().st_size for w in wheels) / 1e6
        print(f"{len(wheels)} wheels, {size:.1f} MB in {args.out}; on the offline machine use the panel's "
              "'Install from a folder of wheels' or: python -m core deps install --wheels DIR")
        return 0
    missing = deps.missing_packages()
    if args.deps_command == "lock":
        from ..setup.paths import RESOURCES

        path = deps.write_lock(args.wheels, args.numpy, args.out or RESOURCES / "locks")
        print(f"wrote {path}")
        return 0
    if args.deps_command == "check":
        print("missing: " + ", ".join(missing) if missing else "all runtime packages import")
        return 1 if missing else 0
    res = deps.install(args.target or deps_base(), args.wheels, args.gpu, log=print)
    print(res.message, file=sys.stderr)
    return 0 if res.ok else 2


def command_adder(sub) -> Callable:
    """``add(name, fn, help)``: a sub-command whose ``func`` is ``fn`` (both CLIs use it)."""
    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str):
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.set_defaults(func=fn)
        return sp

    return add


def run_command(args: argparse.Namespace) -> int:
    """Run a parsed command: an RsSageError is one line on stderr and exit 2, never a traceback."""
    try:
        return int(args.func(args) or 0)
    except RsSageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    from ..imagery.labeller import LARGE_PLAN_TILES
    p = argparse.ArgumentParser(
        prog="python -m core",
        description="RS-SAGE: offline remote-sensing scene classification and question answering.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = command_adder(sub)

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
    lb.add_argument("--tile", type=int, default=None,
                    help="tile size in pixels (default: about 900 m across at the scale used, 32-224 px)")
    lb.add_argument("--stride", type=int, default=None, help="tile step in pixels (overlap)")
    lb.add_argument("--mask", default=None, help="polygon file: label only tiles touching it")
    lb.add_argument("--bands", type=int, nargs=3, default=None, help="R G B band numbers")
    lb.add_argument("--max-tiles", type=int, default=None,
                    help=f"refuse plans with more tiles (default {LARGE_PLAN_TILES:,} unless --allow-large)")
    lb.add_argument("--allow-large", action="store_true", help="run plans of any size")
    lb.add_argument("--nodata", type=float, default=None,
                    help="extra nodata value in every band (the file's own nodata, NaN, the mask band and "
                         "a fill collar found along the border are always skipped)")
    lb.add_argument("--dask", default=None, metavar="SCHEDULER",
                    help="run on Dask: local, local:N (N single-threaded worker processes) or tcp://host:8786")
    lb.add_argument("--cog", action="store_true", help="write the class GeoTIFF as a Cloud-Optimised GeoTIFF")
    lb.add_argument("--embeddings", default=None, metavar="GPKG",
                    help="also write one scene vector per tile (GeoPackage layer 'embeddings') and a FAISS index "
                         "beside it (.faiss), for 'python -m core similar'")
    lb.add_argument("--views", type=int, choices=sorted(VIEW_SETS), default=DEFAULT_VIEWS,
                    help="rotated views averaged per tile (1 is about 4x faster than the default 4)")

    kb = add("kb", _kb, "search and extend the knowledge base")
    kbs = kb.add_subparsers(dest="kb_command", metavar="KB_COMMAND", required=True)
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

    add("status", _status, "what is installed and ready")
    doc = add("doctor", _doctor, "versions, paths, providers, GPU and checksums, for a bug report")
    doc.add_argument("--json", action="store_true")
    doc.add_argument("--no-engine", action="store_true", help="do not load the model to see the providers")
    dp = add("deps", _deps, "check or install the runtime's Python packages (plugin-owned folder)")
    dps = dp.add_subparsers(dest="deps_command", metavar="DEPS_COMMAND", required=True)
    dps.add_parser("check", help="which runtime packages are missing")
    di = dps.add_parser("install", help="pip-install the runtime packages into the plugin's own folder")
    di.add_argument("--wheels", default=None, help="offline: a folder of wheels (no index is used)")
    di.add_argument("--target", default=None, help="base folder (default: the QGIS profile's rs_sage/python)")
    di.add_argument("--gpu", action="store_true", help="the CUDA build of onnxruntime")
    wh = dps.add_parser("wheelhouse", help="download the wheels an offline machine needs (run where online)")
    wh.add_argument("--out", required=True)
    wh.add_argument("--platform", default=None, help="pip platform tag, e.g. manylinux_2_28_x86_64, win_amd64, "
                    "macosx_11_0_arm64 (default: this machine)")
    wh.add_argument("--python-version", default=None, help="e.g. 3.12 (default: this Python)")
    wh.add_argument("--numpy", default=None, help="the numpy version of the target QGIS (e.g. 1.24.2)")
    wh.add_argument("--gpu", action="store_true", help="the CUDA build of onnxruntime")
    lk = dps.add_parser("lock", help="write the lock file (exact versions, sha256) of a tested wheel folder")
    lk.add_argument("--wheels", required=True, help="the folder 'deps wheelhouse' made and the tests installed")
    lk.add_argument("--numpy", required=True, help="the numpy version of the QGIS it was tested with")
    lk.add_argument("--out", default=None, help="folder (default: resources/locks)")
    sm = add("similar", _similar, "find the tiles most like examples or words in an embeddings GeoPackage")
    sm.add_argument("embeddings", help="GeoPackage written by 'label --embeddings'")
    sm.add_argument("--example", type=int, nargs="+", default=[], metavar="TILE_ID",
                    help="ids (fid) of example tiles in the embeddings file")
    sm.add_argument("--not", dest="negative", type=int, nargs="+", default=[], metavar="TILE_ID",
                    help="tiles marked 'not this' (Rocchio re-ranking)")
    sm.add_argument("--image", nargs="+", default=[], help="example image files")
    sm.add_argument("--text", default=None, help="a phrase, e.g. 'solar farm'")
    sm.add_argument("-k", type=int, default=None, help="how many tiles (default 10 unless --threshold)")
    sm.add_argument("--threshold", type=float, default=None, help="every tile at least this similar (-1..1)")
    sm.add_argument("--out", default=None, help="GeoPackage of the matches (layer 'similar')")
    sm.add_argument("--json", action="store_true")

    md = add("models", _models, "install or verify the model pack (download, or a file for offline machines)")
    mds = md.add_subparsers(dest="models_command", metavar="MODELS_COMMAND", required=True)
    mi = mds.add_parser("install", help="install the pack from a URL (default: where it is published) or a file")
    mi.add_argument("source", nargs="?", default=None, help="URL or pack file (default: the published URL, "
                    "or $RS_SAGE_MODELS_URL)")
    mi.add_argument("--any-version", action="store_true", help="accept a pack of another version than this "
                    "plugin's (testing a mirror's file)")
    mv = mds.add_parser("verify", help="check every installed model file against the pack's manifest")
    mv.add_argument("--any-version", action="store_true")
    return p


def _similar(args: argparse.Namespace) -> int:
    import os

    from ..questions.similar import load_store, query_vector, search, write_matches

    if args.out and os.path.realpath(args.out) == os.path.realpath(args.embeddings):
        raise RsSageError("--out is the embeddings file itself; give the matches a file of their own.")
    store = load_store(args.embeddings)
    positives = [store.vector_of(f) for f in args.example]
    negatives = [store.vector_of(f) for f in args.negative]
    if args.image or args.text:
        from ..model.engine import Engine

        engine = Engine.load()
        if args.image:
            from .predict import read_image

            positives += list(engine.embed([read_image(p) for p in args.image]))
        if args.text:
            if not args.text.strip():
                raise RsSageError("--text is empty; type what to look for.")
            positives.append(engine.phrase_embedding(args.text.strip()))
    k = args.k if args.k is not None or args.threshold is not None else 10
    matches = search(store, query_vector(positives, negatives), k, args.threshold,
                     exclude=set(args.example) | set(args.negative))
    if args.out:
        write_matches(store, matches, args.out)
    for m in matches:
        print(json.dumps(m.__dict__) if args.json else f"{m.rank:4d}  tile {m.fid:6d}  {m.similarity:.3f}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..setup.model_pack import PackInfo, install_file, install_url, installed_root, status, verify_folder

    info = None if args.any_version else PackInfo.load()
    if args.models_command == "install":
        src = args.source
        if src and not src.startswith(("http://", "https://")):
            root = install_file(Path(src), info)
        else:
            last = [0.0]

            def show(done: int, total: int) -> None:
                if total and done / total - last[0] >= 0.05:
                    last[0] = done / total
                    print(f"{done / 1e6:.1f} of {total / 1e6:.1f} MB", file=sys.stderr, flush=True)

            root = install_url(src, info or PackInfo.load(), progress=show)
        print(f"installed {root}")
        return 0
    root = installed_root()
    if root is None:
        raise RsSageError("No model pack is installed; run 'python -m core models install [URL|FILE]'.")
    verify_folder(root)
    st = status(info=info)
    if info is not None and not st["ok"]:
        raise RsSageError(f"The installed pack is {st['installed']}; this plugin needs {st['needed']}.")
    print(json.dumps(st))
    return 0


# Commands that build the model live in the development package (a source checkout), not in
# the runtime: forwarded there by name when it is installed, explained when it is not.
DEV_PACKAGE = "rs_sage_dev"
DEV_COMMANDS = ("train", "export", "export-text", "eval", "open-eval", "calibrate", "bench", "data-card", "demo")


def _dev_command(argv: list[str]) -> bool:
    return bool(argv) and (argv[0] in DEV_COMMANDS or argv[:2] == ["kb", "build"])


def _run_dev(argv: list[str]) -> int:
    import importlib
    import importlib.util

    if importlib.util.find_spec(DEV_PACKAGE) is None:
        print(f"error: '{' '.join(argv[:2])}' is a development command: it needs the RS-SAGE source "
              f"checkout with its development requirements (python -m {DEV_PACKAGE} {argv[0]} ...).",
              file=sys.stderr)
        return 2
    return importlib.import_module(f"{DEV_PACKAGE}.cli").main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if _dev_command(argv):
        return _run_dev(argv)
    parser = build_parser()
    parser.epilog = f"Development commands (source checkout): {', '.join(DEV_COMMANDS)}, kb build."
    return run_command(parser.parse_args(argv))
