"""Write ``docs/results.md`` from an evaluation result (the numbers are never typed by hand)."""

from __future__ import annotations

from pathlib import Path

HEADER = """# RS-SAGE results

Produced by `python -m core eval` (or `make eval`) on {date}; machine: {machine}.
Test set: the RSICD test split of AID ({n} images, never trained on), labels = the 30 AID
class names in plain English, generated VQA test questions (see `docs/data.md`).
Evaluation wall time: {seconds} s. Raw numbers: `docs/results.json`.
"""


def write_results(res: dict, path: Path) -> None:
    c, v, r = res["classification"], res["vqa"], res["retrieval"]
    lines = [HEADER.format(date=res["date"], machine=res["machine"], n=c["n"], seconds=res["seconds"])]
    lines += ["## Main table", "", "| metric | value |", "|---|---|",
              f"| scene top-1 | {c['top1'] * 100:.2f} % |",
              f"| scene top-5 | {c['top5'] * 100:.2f} % |"]
    for t, a in v["per_type"].items():
        lines.append(f"| VQA {t} ({v['n'][t]} questions) | {a * 100:.2f} % |")
    lines.append(f"| VQA average over types | {v['average'] * 100:.2f} % |")
    for lv, d in r.items():
        lines.append(f"| retrieval recall@8, {lv} level ({d['images']} images) | {d['recall_at_8'] * 100:.2f} % |")
    tc = res.get("torch_check", {})
    if "torch_top1" in tc:
        lines.append(f"| torch checkpoint `{tc['checkpoint']}`, same images and views | "
                     f"{tc['torch_top1'] * 100:.2f} % (onnxruntime {c['top1'] * 100:.2f} %) |")
    lines += ["", f"Views averaged per image: {res.get('views', 1)} (rotations, then mirrored rotations; "
              "`core.model.engine.VIEW_SETS`, chosen on validation images with `scripts/tta_val.py`).", ""]
    lines += ["## Per-class accuracy (top-1)", "", "| class | accuracy |", "|---|---|"]
    for name, acc in sorted(c["per_class"].items(), key=lambda kv: kv[1]):
        lines.append(f"| {name} | {acc * 100:.1f} % |")
    lines += ["", "Confusion matrix: ![confusion matrix](confusion.png)", ""]
    if "ablations" in res:
        from .ablation import ablation_table

        ab = res["ablations"]
        lines += ["## Ablations", "",
                  f"Every variant below was retrained from the same cache with the same seed ({ab['seed']}) "
                  f"and the same budget: {ab['epochs']} epochs (the shipped model has 10; the `full` row is "
                  "the shipped architecture retrained at this budget, so rows compare like with like). "
                  "Tested on the RSICD test split with the torch models on the cached test features, "
                  "one view per image (`python -m core eval --ablations`). Scene deltas are against `full`.", "",
                  *ablation_table(ab), ""]
    ood_path = path.parent / "ood.json"
    if ood_path.is_file():
        import json

        from .ood_eval import ood_markdown

        before_path = path.parent / "ood_before.json"
        before = json.loads(before_path.read_text()) if before_path.is_file() else None
        ood = json.loads(ood_path.read_text())
        lines += [*ood_markdown(ood, before), "",
                  f"OOD numbers: `python -m core eval --ood` ({ood.get('date')}, {ood.get('seconds')} s); "
                  "'before' (the model shipped before the generalisation work): "
                  "`python -m core eval --ood --ood-tag before --model-dir <that model's folder>`. "
                  "Name mapping: `rs_sage_dev/ood_eval.py` (OTHER_NAMES, BROAD_NAMES, BROAD_UNSEEN); "
                  "hand labels: `docs/ood_real_tiles.csv`.", ""]
    ab_path = path.parent / "ablation_ood.json"
    if ab_path.is_file():
        import json

        from .ood_eval import ablation_ood_markdown

        lines += [*ablation_ood_markdown(json.loads(ab_path.read_text())), "",
                  "Produced by `.venv/bin/python scripts/ablation_ood.py` (trains what is missing, resumes).", ""]
    cov_path = path.parent / "question_coverage.json"
    if cov_path.is_file():
        import json

        cov = json.loads(cov_path.read_text())
        lines += ["## Question wording coverage (RSVQA-LR test questions)", "",
                  f"{cov['questions']:,} questions of RSVQA-LR's test split (text only, no images: coverage, not "
                  f"accuracy). **{100 * cov['covered']:.1f} %** are parsed to the type the benchmark gives them or "
                  f"refused with a message: {100 * cov['right_type']:.1f} % parsed to the right type, "
                  f"{100 * cov['refused']:.1f} % refused (shape or size qualifiers such as 'a square commercial "
                  "building' or 'large water areas', and positions such as 'left of the road': the model cannot "
                  "judge these, so it says so instead of answering a simpler question).", "",
                  "| RSVQA type | parsed to that type | refused | wrong type |", "|---|---|---|---|"]
        for t, c in cov["by_rsvqa_type"].items():
            wrong = sum(v for k, v in c.items() if k.startswith("wrong"))
            lines.append(f"| {t} | {c.get('right type', 0)} | {c.get('refused', 0)} | {wrong} |")
        lines += ["", f"Command: `{cov['command']}`; a 50-question sample with expected outcomes is a test "
                  "(`tests/test_region_questions.py`).", ""]
    int8 = _int8_gate()
    if int8:
        lines += int8
    extra = path.parent / "results_notes.md"
    if extra.is_file():
        lines += [extra.read_text()]
    path.write_text("\n".join(lines) + "\n")


INT8_PARTS = {
    "encoder": ("int8 image encoder", "Static int8 quantisation (QDQ, per-channel weights, calibrated on training "
                "images; the first convolution and blocks 0-1 stay float32, "
                "rs_sage_dev.quantize.FLOAT_ENCODER_LAYERS), measured together with the int8 experts, "
                "as the engine runs them"),
    "experts": ("int8 experts", "Static int8 quantisation of the experts' MatMuls (QDQ, per-channel weights, "
                "activation ranges calibrated on 200 training images with the default question and their generated "
                "questions), measured together with the int8 image encoder, so the loss shown is that of the whole "
                "int8 engine"),
}


def _int8_gate() -> list[str]:
    """The int8 graphs' accuracy gates, from the shipped model.json."""
    import json

    from core.setup.paths import MODEL_DIR

    try:
        meta = json.loads((MODEL_DIR / "model.json").read_text())
    except (OSError, ValueError):
        return []
    lines: list[str] = []
    for part, (title, what) in INT8_PARTS.items():
        gate = meta.get(f"int8_{part}")
        if not gate:
            continue
        lines += [f"## {title}", "",
                  f"{what}; offered only if no metric below loses more than {gate['gate_pt']} pt against float32. "
                  f"**Accepted: {gate['accepted']}** (largest loss {max(gate['drop_pt'].values()):.2f} pt). The "
                  "engine uses it on CPU by default (`Engine.load(precision=...)`, `python -m core eval --precision`).",
                  "", "| metric | float32 | int8 | loss (pt) |", "|---|---|---|---|"]
        for k, v in gate["float32"].items():
            lines.append(f"| {k} | {v:.2f} | {gate['int8'][k]:.2f} | {gate['drop_pt'][k]:+.2f} |")
        lines += ["", f"How: {gate['how']}.", ""]
    return lines
