"""``python -m rs_sage_dev.ship CHECKPOINT WORK_DIR``: a trained checkpoint to a model folder the
runtime can ship, every step measured on validation or test data only:

1. export the float graphs (``export_onnx``);
2. measure the validation gate (``val_gate``: AID and EuroSAT validation, coarse imagery and
   never-trained wording, all on validation images) for this model and for the shipped one, into
   ``WORK_DIR/val_gate.json`` and ``model.json`` (``validation_gate``): model 0.2.0 shipped without
   its out-of-domain rows and lost 7-14 pt on them unseen;
3. choose the 'none of these' threshold on validation images (``open_eval``, balanced accuracy)
   and the 'uncertain' one (``calibrate``), with the model's label templates (``--label-templates``,
   chosen on validation by ``template_val``), and write them into the metadata;
4. quantise the encoder, then the experts with that int8 encoder (calibrated on 200 training
   images and questions, ``quantize``);
5. gate the int8 pair against float32 on the AID test split (top-1 with 4 and 1 views, VQA
   average) and our EuroSAT test split (10 plain names): accepted when no metric drops by more
   than ``GATE_PT`` points; the gate is recorded in ``model.json`` as ``int8_encoder`` and
   ``int8_experts`` (the engine uses int8 on CPU only when accepted).

The folder is ``WORK_DIR/model``; copy it to ``resources/models`` to ship it.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from .quantize import GATE_PT


def gate_metrics(model_dir: Path, precision: str) -> dict:
    """AID test top-1 (4 and 1 views), VQA average (4 and 1 views) and EuroSAT test accuracy, in %."""
    from .evaluate import evaluate
    from .open_eval import EUROSAT_NAMES, embed_paths, split_images

    out = {}
    for views in (4, 1):
        res = evaluate(model_dir, None, None, views, precision)
        out[f"aid_test_top1_{views}view"] = round(100 * res["classification"]["top1"], 2)
        out[f"vqa_average_{views}view"] = round(100 * res["vqa"]["average"], 2)
    from core.model.engine import Engine

    engine = Engine.load(model_dir, user_kb=False, precision=precision)
    paths, labels, _ = split_images("eurosat", "test")
    cos = embed_paths(engine, paths) @ engine.label_embeddings(EUROSAT_NAMES).T
    out["eurosat_test_4view"] = round(100 * float((cos.argmax(1) == labels).mean()), 2)
    return out


def validation_gate(model: Path) -> dict:
    """``val_gate`` figures of the new float32 model beside the shipped one's, printed side by
    side so that a regression out of domain is seen before the test split is run."""
    from core.setup.paths import MODEL_DIR

    from .val_gate import val_figures

    gate = {"candidate": val_figures(model), "shipped": val_figures(MODEL_DIR)}
    for key in ("aid_val", "eurosat_val", "sensor_shift_val", "wording_val"):
        print(f"{key}: candidate {gate['candidate'][key]}  shipped {gate['shipped'][key]}", flush=True)
    return gate


def ship(checkpoint: Path, work: Path, templates: list[str] | None = None) -> Path:
    from .export import export_onnx

    model = work / "model"
    if model.exists():
        shutil.rmtree(model)
    export_onnx(checkpoint, model)
    return settle(model, work, templates)


def settle(model: Path, work: Path, templates: list[str] | None = None) -> Path:
    """Steps 2-5 on an exported float model folder: the label templates (if given), the
    validation gate, both thresholds chosen on validation with those templates, int8 and its gate.
    ``--retemplate`` runs it on a shipped folder with new templates (its int8 graphs are made again)."""
    from .calibrate import choose_threshold, collect, write_threshold
    from .open_eval import run_open_eval, write_settings

    for name in ("encoder.int8.onnx", "experts.int8.onnx"):  # so that every step below is float32
        (model / name).unlink(missing_ok=True)
    if templates is not None:
        write_settings(model, label_templates=templates)
    gate = validation_gate(model)
    (work / "val_gate.json").write_text(json.dumps(gate, indent=2) + "\n")
    meta = json.loads((model / "model.json").read_text())
    meta["validation_gate"] = gate
    for part in ("int8_encoder", "int8_experts"):
        meta.pop(part, None)
    (model / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    res = run_open_eval(model, (), None, calibrate=True)
    write_settings(model, match_below=res["match_below"])
    (work / "open_eval_float.json").write_text(json.dumps(res, indent=2) + "\n")
    print(f"match_below {res['match_below']}", flush=True)
    from core.model.engine import Engine

    uncertain = choose_threshold(*collect(Engine.load(model, user_kb=False, precision="float32")))
    write_threshold(model, uncertain["threshold"])
    (work / "uncertainty.json").write_text(json.dumps(uncertain, indent=2) + "\n")
    print(f"uncertain_below {uncertain['threshold']}", flush=True)
    return quantize_and_gate(model, work)


def quantize_and_gate(model: Path, work: Path) -> Path:
    """Steps 3 and 4 on an exported, calibrated float model folder (``--requantize``)."""
    from core.model.model_files import write_checksums

    from .quantize import quantize_encoder, quantize_experts

    for name in ("encoder.int8.onnx", "experts.int8.onnx"):
        (model / name).unlink(missing_ok=True)
    meta = json.loads((model / "model.json").read_text())
    for part in ("int8_encoder", "int8_experts"):
        meta.pop(part, None)
    (model / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(model)

    quantize_encoder(work / "q_encoder", 200, model)
    shutil.copy(work / "q_encoder" / "encoder.onnx", model / "encoder.int8.onnx")
    write_checksums(model)
    quantize_experts(work / "q_experts", model)
    shutil.copy(work / "q_experts" / "experts.onnx", model / "experts.int8.onnx")
    write_checksums(model)

    f32 = gate_metrics(model, "float32")
    i8 = gate_metrics(model, "int8")
    drops = {k: round(f32[k] - i8[k], 2) for k in f32}
    accepted = all(d <= GATE_PT for d in drops.values())
    meta = json.loads((model / "model.json").read_text())
    how = ("python -m rs_sage_dev.ship CHECKPOINT WORK_DIR, or --requantize WORK_DIR on an exported model (int8 "
           "encoder, its first layers float32 as chosen on validation by rs_sage_dev.int8_layers, and int8 experts "
           "together against float32: AID test 4/1 views, VQA average 4/1 views, EuroSAT test)")
    for part in ("int8_encoder", "int8_experts"):
        meta[part] = {"accepted": accepted, "gate_pt": GATE_PT, "drop_pt": drops, "float32": f32, "int8": i8,
                      "how": how}
    (model / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(model)
    print(json.dumps({"float32": f32, "int8": i8, "drops": drops, "accepted": accepted}, indent=2), flush=True)
    return model


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .template_val import TEMPLATE_SETS

    p = argparse.ArgumentParser(prog="python -m rs_sage_dev.ship", description=__doc__.split("\n\n")[0])
    p.add_argument("checkpoint", nargs="?", help="trained checkpoint (omit with --requantize / --retemplate)")
    p.add_argument("work", help="work folder; the model folder is WORK/model")
    p.add_argument("--requantize", action="store_true", help="only steps 4-5 on WORK/model, exported and calibrated")
    p.add_argument("--retemplate", action="store_true",
                   help="steps 2-5 on WORK/model with --label-templates (thresholds and int8 made again)")
    p.add_argument("--label-templates", choices=sorted(TEMPLATE_SETS), default=None,
                   help="sentence templates labels are embedded in (rs_sage_dev.template_val.TEMPLATE_SETS)")
    args = p.parse_args(argv)
    work = Path(args.work)
    templates = TEMPLATE_SETS[args.label_templates] if args.label_templates else None
    if args.requantize:
        print(quantize_and_gate(work / "model", work))
    elif args.retemplate:
        print(settle(work / "model", work, templates))
    elif args.checkpoint:
        print(ship(Path(args.checkpoint), work, templates))
    else:
        p.error("give CHECKPOINT WORK, or --requantize / --retemplate WORK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
