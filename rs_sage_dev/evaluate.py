"""``python -m core eval``: the shipped ONNX model on the RSICD test split of AID.

Reports scene classification (top-1, top-5, per class, confusion matrix), VQA accuracy per
type on the generated test questions, and retrieval recall@8 per level. Nothing here touches
the training or validation images.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .dataset import AID_CLASSES, DEFAULT_LABELS, image_path, load_samples


def load_test_images(limit: int | None = None):
    from .prepare import load_rgb

    samples = [s for s in load_samples() if s.split == "test"]
    if limit:
        samples = samples[:limit]
    return samples, [load_rgb(image_path(s)) for s in samples]


def classification_metrics(engine, tokens, queries, samples) -> dict:
    results = engine.classify_encoded(tokens, queries, DEFAULT_LABELS, top_k=5)
    truth = np.array([s.label_index for s in samples])
    pred = np.array([DEFAULT_LABELS.index(r.label) for r in results])
    top5 = np.array([DEFAULT_LABELS.index(truth_label) in [DEFAULT_LABELS.index(lab) for lab, _ in r.top]
                     for r, truth_label in zip(results, [DEFAULT_LABELS[t] for t in truth], strict=True)])
    n = len(AID_CLASSES)
    confusion = np.zeros((n, n), dtype=int)
    for t, p in zip(truth, pred, strict=True):
        confusion[t, p] += 1
    per_class = {DEFAULT_LABELS[c]: float(confusion[c, c] / max(confusion[c].sum(), 1)) for c in range(n)}
    return {"top1": float((pred == truth).mean()), "top5": float(top5.mean()), "n": int(len(truth)),
            "per_class": per_class, "confusion": confusion.tolist()}


def vqa_metrics(engine, tokens, queries, samples) -> dict:
    from .questions import generate

    index = {s.image: i for i, s in enumerate(samples)}
    items = [it for it in generate(load_samples()) if it.split == "test" and it.image in index]
    by_question: dict[str, list] = defaultdict(list)
    for it in items:
        by_question[it.question].append(it)
    hits: dict[str, list[int]] = defaultdict(list)
    for question, group in by_question.items():
        rows = [index[it.image] for it in group]
        answers = engine.ask_encoded(tokens[rows], queries[rows], question)
        for it, a in zip(group, answers, strict=True):
            hits[it.type].append(int(a.answer == it.answer))
    per_type = {t: float(np.mean(v)) for t, v in sorted(hits.items())}
    counts = {t: len(v) for t, v in sorted(hits.items())}
    return {"per_type": per_type, "n": counts, "average": float(np.mean(list(per_type.values())))}


def retrieval_recall(engine, tokens, queries, samples, k: int = 8) -> dict:
    """Share of test images whose top-k cues of a level include a concept their captions name."""
    from .questions import mentions
    from .textproc import tokens as words

    u = np.repeat(engine._default_question()[None], len(tokens), 0)
    rows, _, _ = engine._retrieve(queries[:, 0], u)  # the unrotated view, as shown to users
    rows = rows[:, :, :k]
    out = {}
    for j, level in enumerate(engine.levels):
        hit, eligible = 0, 0
        for i, s in enumerate(samples):
            text = " " + " ".join(" ".join(words(c)) for c in s.captions) + " "
            if level == "object":
                named = mentions(s)
            else:
                named = set()
                kb_level = engine.kb_levels[j]
                for e in engine.kb.rows_of(kb_level):
                    if any(f" {n.lower()} " in text for n in [e.name, *e.aliases]):
                        named.add(e.name)
            level_names = {e.name for e in engine.kb.rows_of(engine.kb_levels[j])}
            named &= level_names
            if not named:
                continue
            eligible += 1
            got = {engine.kb.entries[r].name for r in rows[i, j] if r >= 0}
            hit += bool(got & named)
        out[level] = {f"recall_at_{k}": hit / max(eligible, 1), "images": eligible}
    return out


def confusion_png(confusion: list[list[int]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.array(confusion, dtype=float)
    cm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(11, 10))
    ax.imshow(cm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(DEFAULT_LABELS)), DEFAULT_LABELS, rotation=90, fontsize=8)
    ax.set_yticks(range(len(DEFAULT_LABELS)), DEFAULT_LABELS, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("RS-SAGE on the AID RSICD test split (row-normalised)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def machine_description(device: str) -> str:
    import os

    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, onnxruntime on {device}"


def torch_scene_probs(model, engine, batch, labels: list[str]):
    """Class probabilities of a torch model for a preprocessed NCHW batch, averaged over the
    engine's views exactly as the engine does: the reference that ONNX speed and agreement
    are measured against."""
    import torch

    from core.model.engine import VIEW_SETS, dihedral

    from .model import KB_LEVELS, retrieve_torch

    kb, cfg = engine.kb, model.cfg
    kb_emb = [torch.from_numpy(kb.embeddings[kb.level_rows[lv]]) for lv in KB_LEVELS]
    label_emb = torch.from_numpy(engine.label_embeddings(labels))
    u = torch.from_numpy(engine._default_question()).expand(len(batch), -1)
    probs = 0
    with torch.inference_mode():
        for k in VIEW_SETS[engine.views]:
            tokens, queries = model.encoder(torch.from_numpy(dihedral(batch, k)) / 127.5 - 1.0)
            cues, scores = retrieve_torch(kb_emb, queries, u, cfg.top_k, cfg.question_weight)
            emb, _, _ = model.experts(tokens, cues, scores, u)
            probs = probs + (engine.logit_scale * emb @ label_emb.T).softmax(-1)
    return probs / len(VIEW_SETS[engine.views])


def torch_agreement(engine, images, samples, checkpoint: Path) -> dict:
    """Top-1 of the torch checkpoint the ONNX files came from, on the same images and views."""
    from .export import load_checkpoint

    if not checkpoint.is_file():
        return {"checkpoint": str(checkpoint), "skipped": "checkpoint not found"}
    model, _ = load_checkpoint(checkpoint, engine.input_size)
    pred = []
    for i in range(0, len(images), 64):
        pred += torch_scene_probs(model, engine, engine._preprocess(images[i:i + 64]),
                                  DEFAULT_LABELS).argmax(1).tolist()
    truth = np.array([s.label_index for s in samples])
    return {"checkpoint": str(checkpoint), "views": engine.views,
            "torch_top1": float((np.array(pred) == truth).mean())}


def evaluate(model_dir=None, limit=None, checkpoint: Path | None = None, views: int | None = None,
             precision: str = "auto") -> dict:
    from core.model.engine import DEFAULT_VIEWS, Engine

    engine = Engine.load(model_dir, user_kb=False, views=views or DEFAULT_VIEWS, precision=precision)
    t0 = time.time()
    samples, images = load_test_images(limit)
    tokens, queries = engine.encode_images(images)
    res = {
        "date": datetime.date.today().isoformat(),
        "machine": machine_description(engine.device),
        "image_encoder_precision": engine.precision,
        "experts_precision": engine.experts_precision,
        "model": engine.meta.get("variant"),
        "classification": classification_metrics(engine, tokens, queries, samples),
        "vqa": vqa_metrics(engine, tokens, queries, samples),
        "retrieval": retrieval_recall(engine, tokens, queries, samples),
        "views": engine.views,
    }
    if checkpoint is not None:
        res["torch_check"] = torch_agreement(engine, images, samples, checkpoint)
        res["torch_check"]["onnx_top1"] = res["classification"]["top1"]
    res["seconds"] = round(time.time() - t0, 1)
    return res


def _publish_logs(ablations: dict, folder: Path) -> None:
    """Copy each variant's training log next to the results page (checkpoints are too big)."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for row in ablations["rows"].values():
        log = Path(row.get("log", ""))
        if log.is_file():
            dest = folder / f"{log.parent.name}.jsonl"
            shutil.copyfile(log, dest)
            row["published_log"] = f"{folder.name}/{dest.name}"  # relative to the results page


def run_ood(args: argparse.Namespace) -> int:
    """The out-of-domain suite alone: ``docs/ood[_TAG].json``, then the results page again."""
    from core.model.engine import DEFAULT_VIEWS, Engine

    from .ood_eval import evaluate_ood
    from .results_page import write_results

    out = Path(args.out)
    engine = Engine.load(args.model_dir, user_kb=False, views=getattr(args, "views", None) or DEFAULT_VIEWS,
                         precision=getattr(args, "precision", "auto"))
    t0 = time.time()
    ood = evaluate_ood(engine, limit=args.limit)
    ood.update(date=datetime.date.today().isoformat(), model_dir=str(args.model_dir or "resources/models"),
               seconds=round(time.time() - t0, 1))
    tag = f"_{args.ood_tag}" if args.ood_tag else ""
    out.parent.mkdir(parents=True, exist_ok=True)
    dest = out.parent / f"ood{tag}.json"
    dest.write_text(json.dumps(ood, indent=2) + "\n")
    for cond, r in ood["sensor_shift"]["conditions"].items():
        print(f"sensor {cond:32s} {100 * r['acc']:5.1f} %  ({100 * r['of_clean']:5.1f} % of clean)")
    for name, r in ood["label_wording"]["rows"].items():
        print(f"names  {name:32s} {100 * r['acc']:5.1f} %  AID names {100 * r['aid_names_acc']:5.1f} %  "
              f"({100 * r['of_aid']:5.1f} %)")
    if "acc" in ood["real_tiles"]:
        print(f"real tiles: {100 * ood['real_tiles']['acc']:.1f} % of {ood['real_tiles']['tiles']}")
    raw = out.with_suffix(".json")
    if raw.is_file():
        write_results(json.loads(raw.read_text()), out)
    print(f"wrote {dest}" + (f", {out}" if raw.is_file() else ""))
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from .ablation import main_json, run_ablations
    from .results_page import write_results

    if getattr(args, "ood", False):
        return run_ood(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = out.with_suffix(".json")
    previous = main_json(raw)
    res = evaluate(args.model_dir, args.limit, Path(args.checkpoint) if args.checkpoint else None,
                   getattr(args, "views", None), getattr(args, "precision", "auto"))
    if args.ablations:
        res["ablations"] = run_ablations()
    elif "ablations" in previous:  # keep the last ablation run's table; say when it ran
        res["ablations"] = previous["ablations"]
    if "ablations" in res:
        _publish_logs(res["ablations"], out.parent / "ablation_logs")
    confusion_png(res["classification"]["confusion"], out.parent / "confusion.png")
    raw.write_text(json.dumps(res, indent=2) + "\n")
    write_results(res, out)
    c, v = res["classification"], res["vqa"]
    print(f"test top-1 {c['top1']:.4f}  top-5 {c['top5']:.4f}  (n={c['n']})")
    print("VQA " + "  ".join(f"{t} {a:.4f}" for t, a in v["per_type"].items()) + f"  average {v['average']:.4f}")
    print("retrieval recall@8 " + "  ".join(f"{lv} {r['recall_at_8']:.3f}" for lv, r in res["retrieval"].items()))
    if "torch_check" in res and "torch_top1" in res["torch_check"]:
        print(f"torch checkpoint top-1 {res['torch_check']['torch_top1']:.4f} (onnxruntime {c['top1']:.4f})")
    print(f"wrote {out}, {raw}, {out.parent / 'confusion.png'}")
    return 0
