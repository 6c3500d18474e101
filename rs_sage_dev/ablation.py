"""Ablations of the paper's claims: each variant retrained with one budget and seed, then tested.

Variants: full (top-k 8), (a) no_retrieval (cues zeroed in training and test), (b) shared_expert
(one expert, no router), (c) scene_only, (d) top-k 1/4/16, (e) baseline (plain fine-tuned
classifier, same backbone split, cached views, seed and epochs). Plus one row that is *not*
retrained: the full variant with cues zeroed at inference only, labelled as such.

The runner resumes: finished variants are skipped, a half-trained one continues from its last
epoch checkpoint.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

VARIANTS = ["full", "no_retrieval", "shared_expert", "scene_only", "topk1", "topk4", "topk16", "baseline"]
ABLATION_EPOCHS = 3
ROOT = Path(".checkpoints/ablation")


def _load(path: Path):
    import torch

    from .model import ModelConfig, RsSageModel

    ck = torch.load(path, map_location="cpu", weights_only=True)
    model = RsSageModel(ModelConfig.from_dict(ck["config"]), pretrained=False)
    model.load_state_dict(ck["model"])
    return model.eval()


def run_ablations(root: Path = ROOT, epochs: int = ABLATION_EPOCHS, variants=None) -> dict:
    import torch

    from core.model.knowledge import KnowledgeBase

    from .model import KB_LEVELS, BaselineClassifier, ModelConfig
    from .training import CACHE, TrainConfig, TrainData, baseline_accuracy, evaluate_split, train

    variants = variants or VARIANTS
    for v in variants:
        out = root / v
        if not (out / "model.pt").is_file():
            t0 = time.time()
            print(f"ablation: training {v} ({epochs} epochs)", flush=True)
            train(TrainConfig(out=str(out), epochs=epochs, variant=v))
            (out / "wall_seconds.txt").write_text(f"{time.time() - t0:.0f}\n")
    kb = KnowledgeBase.load(user_dir=False)
    kb_emb = [torch.from_numpy(kb.embeddings[kb.level_rows[lv]]) for lv in KB_LEVELS]
    data = TrainData(CACHE, kb)
    rows = {}
    for v in variants:
        path = root / v / "model.pt"
        if v == "baseline":
            from .dataset import AID_CLASSES

            model = BaselineClassifier(ModelConfig(), len(AID_CLASSES), pretrained=False)
            model.load_state_dict(torch.load(path, weights_only=True)["model"])
            rows[v] = {"acc": baseline_accuracy(model, data, "test"), "vqa": {}, "vqa_avg": None}
        else:
            rows[v] = evaluate_split(_load(path), data, "test", kb_emb)
        rows[v]["checkpoint"] = str(path)
        rows[v]["log"] = str(root / v / "log.jsonl")
    if "full" in variants:
        model = _load(root / "full" / "model.pt")
        model.experts.cfg.retrieval = False  # inference-time switch only; not retrained
        rows["full, cues zeroed at inference only"] = {**evaluate_split(model, data, "test", kb_emb),
                                                       "checkpoint": str(root / "full" / "model.pt")}
    return {"epochs": epochs, "seed": 0, "rows": rows}


def ablation_table(ab: dict) -> list[str]:
    types = ["scene", "presence", "count", "rural_urban"]
    lines = ["| variant | scene top-1 | " + " | ".join(f"VQA {t}" for t in types) + " | VQA avg | checkpoint |",
             "|---|---|" + "---|" * len(types) + "---|---|"]
    full = ab["rows"].get("full", {}).get("acc")
    for name, r in ab["rows"].items():
        delta = f" ({(r['acc'] - full) * 100:+.2f})" if full is not None and name != "full" else ""
        vqa = [f"{r['vqa'][t] * 100:.2f} %" if t in r.get("vqa", {}) else "n/a" for t in types]
        avg = f"{r['vqa_avg'] * 100:.2f} %" if r.get("vqa_avg") is not None else "n/a"
        log = r.get("published_log")
        where = f"`{r['checkpoint']}`" + (f", [log]({log})" if log else "")
        cells = [f"{r['acc'] * 100:.2f} %{delta}", *vqa, avg, where]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def main_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}
