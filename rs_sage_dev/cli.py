"""``python -m rs_sage_dev``: the commands that build the model (train, export, eval, calibrate,
bench, data-card, demo, kb build).

``python -m core <command>`` forwards these here when this package is present, so the commands
in the docs work from a source checkout; the plugin ZIP does not ship this package.
"""

from __future__ import annotations

import argparse
import json

from core.cli import command_adder, run_command
from core.model.engine import DEFAULT_VIEWS, VIEW_SETS

DEV_COMMANDS = ("train", "export", "export-text", "eval", "open-eval", "calibrate", "bench", "data-card", "demo", "kb")


def _train(args: argparse.Namespace) -> int:
    from .training import TrainConfig, train

    cfg = TrainConfig.from_args(args)
    if cfg.open_vocab:
        from .open_vocab import train_open

        train_open(cfg)
    else:
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


def _open_eval(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .open_eval import DEFAULT_LEAVE_OUT, run_open_eval, write_settings

    if args.report:
        from .open_eval import write_report

        runs = [(n, json.loads(Path(f).read_text())) for n, f in (r.split("=", 1) for r in args.report)]
        write_report(Path("docs/results.md"), runs)
        print("wrote the open-vocabulary section of docs/results.md")
        return 0
    leave = DEFAULT_LEAVE_OUT if args.leave_out == "default" else tuple(x for x in args.leave_out.split(",") if x)
    res = run_open_eval(Path(args.model_dir) if args.model_dir else None, leave, args.limit, args.calibrate,
                        args.threads)
    res["command"] = "python -m core " + " ".join(args.argv)
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    if args.write:
        from core.setup.paths import MODEL_DIR

        write_settings(Path(args.model_dir or MODEL_DIR), match_below=res["match_below"])
        print(f"wrote match_below={res['match_below']} into {args.model_dir or MODEL_DIR}")
    return 0


def _calibrate(args: argparse.Namespace) -> int:
    from .calibrate import main as calibrate

    return calibrate(args)


def _bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    return run_bench(args)


def _data_card(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .data_card import write_data_card

    write_data_card(Path(args.out))
    print(f"wrote {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import report, run_demo

    _, res = run_demo()
    print(report(res))
    print("(make demo also renders out/demo_map.png with QGIS)")
    return 0


def _export_text(args: argparse.Namespace) -> int:
    from .text_export import export_text_encoder

    print(json.dumps(export_text_encoder(args.out), indent=2))
    return 0


def _kb_build(args: argparse.Namespace) -> int:
    from .kb_build import build

    print(json.dumps(build(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m rs_sage_dev",
                                description="RS-SAGE development commands: build, evaluate and benchmark the model.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add = command_adder(sub)

    t = add("train", _train, "train the model (checkpoints and resumes)")
    t.add_argument("--out", default=".checkpoints/full")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--variant", default="full")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--input-size", type=int, default=160, help="model input in px (multiple of 32)")
    t.add_argument("--backbone", default="efficientnet-lite0", choices=["efficientnet-lite0", "efficientnet-lite2"],
                   help="ImageNet backbone from its registry package")
    t.add_argument("--frozen-blocks", type=int, default=None,
                   help="backbone blocks kept frozen and cached (default: through stage 3, 5 for Lite0)")
    t.add_argument("--cache", default=None,
                   help="feature cache folder (default .cache/train[SIZE][_frozenN])")
    t.add_argument("--init-from", default=None, help="model.pt to fine-tune from")
    t.add_argument("--lr-scale", type=float, default=1.0, help="multiplies both learning rates")
    t.add_argument("--distill-from", default=None,
                   help="model.pt whose class probabilities, averaged over each training image's cached "
                        "augmented views, every single view is also trained to match (self-distillation)")

    t.add_argument("--open", action="store_true",
                   help="open-vocabulary training on AID and EuroSAT against the text pool (the shipped model)")
    t.add_argument("--leave-out", default="",
                   help="comma-separated classes (aid:Pond,eurosat:Highway) whose images and texts are "
                        "never trained on; 'default' for the documented stand-in set")
    t.add_argument("--eurosat-per-epoch", type=int, default=None)
    t.add_argument("--loss-weights", default=None, metavar="cls=1,words=0.2,scene_cap=0.3,broad=0.3",
                   help="--open loss weights (default: the shipped recipe)")
    t.add_argument("--cross-set", choices=["negative", "ignore"], default=None,
                   help="--open: how the text-pool loss treats the other data set's texts of classes that "
                        "show the same thing (EuroSAT AnnualCrop / AID Farmland): as negatives (model 0.2.0) "
                        "or not at all")
    t.add_argument("--coarse-share", type=float, default=None,
                   help="--open: share of AID training images shown as a coarse (2.5-8x area-averaged) view, "
                        "from .cache/train/stem_train_coarse.npy (made on first use)")
    t.add_argument("--max-steps", type=int, default=None, help="steps per epoch cap (smoke runs)")

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
    ev.add_argument("--precision", choices=["auto", "float32", "int8"], default="auto",
                    help="int8 image encoder and experts where their gates passed (auto), or force both")
    ev.add_argument("--ood", action="store_true",
                    help="only the out-of-domain suite (sensor shift, label wording, real rasters) -> docs/ood.json")
    ev.add_argument("--ood-tag", default="",
                    help="suffix of the OOD result file (e.g. 'before' for a previous model's numbers)")
    ev.add_argument("--ablations", action="store_true",
                    help="also (re)train and test the ablation variants (slow; resumes)")

    oe = add("open-eval", _open_eval, "open-vocabulary, leave-classes-out and 'none of these' figures")
    oe.add_argument("--model-dir", default=None)
    oe.add_argument("--leave-out", default="",
                    help="classes the model was trained without ('default': the stand-in set)")
    oe.add_argument("--limit", type=int, default=None, help="images per split (smoke runs)")
    oe.add_argument("--calibrate", action="store_true", help="choose the 'none of these' threshold on validation")
    oe.add_argument("--write", action="store_true", help="write the chosen threshold into the model's metadata")
    oe.add_argument("--out", default=None, help="JSON file for the figures")
    oe.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    oe.add_argument("--report", nargs="+", metavar="NAME=JSON", default=None,
                    help="only write the open-vocabulary section of docs/results.md from earlier JSON results")

    cal = add("calibrate", _calibrate, "choose the 'uncertain' score threshold on validation images")
    cal.add_argument("--model-dir", default=None)
    cal.add_argument("--limit", type=int, default=None)
    cal.add_argument("--report", default="docs/uncertainty.json")
    cal.add_argument("--dry-run", action="store_true")

    b = add("bench", _bench, "speed benchmarks (retrieval, engine)")
    b.add_argument("--json", action="store_true")
    b.add_argument("--section", default="all",
                   choices=["all", "retrieval", "engine", "labeller", "cold", "dask", "big", "similar"])

    dc = add("data-card", _data_card, "write the data card of the generated VQA set")
    dc.add_argument("--out", default="docs/data.md")

    et = add("export-text", _export_text, "export the MiniLM sentence encoder to ONNX for the torch-free runtime")
    et.add_argument("--out", default=None, help="folder (default resources/text_encoder)")
    add("demo", _demo, "the main job's labelling step on the sample raster (make demo adds the map)")
    kb = sub.add_parser("kb", help="knowledge-base building")
    kbs = kb.add_subparsers(dest="kb_command", metavar="KB_COMMAND", required=True)
    kbs.add_parser("build", help="regenerate resources/knowledge deterministically").set_defaults(func=_kb_build)
    return p


def main(argv: list[str] | None = None) -> int:
    import sys

    args = build_parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return run_command(args)
