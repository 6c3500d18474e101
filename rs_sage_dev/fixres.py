"""The same weights at a larger input size ("FixRes", Touvron et al. 2019).

Training views are random crops of 35-100 % of an image resized to the model's input, so objects
look larger in training than in the whole, uncropped tile seen at inference. Running the
trained weights at a larger input closes that gap without retraining: the network is
convolutions plus fixed 4x4 poolings, and only the constant pooling matrices depend on the size.
This module writes the checkpoint at another input size and measures it on validation images
only (the rule is ``docs/selection_logs/fixres_rule.md``).

    python -m rs_sage_dev.fixres --checkpoint .checkpoints/full/model.pt --sizes 160 192 224 --out DIR
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from core.errors import RsSageError


def resized_checkpoint(ck: dict, size: int) -> dict:
    """The checkpoint with its input size set to ``size`` (weights untouched)."""
    if size <= 0 or size % 32:
        raise RsSageError(f"The input size must be a positive multiple of 32, got {size}.")
    out = dict(ck)
    out["config"] = {**ck["config"], "input_size": size}
    out["train"] = {**ck.get("train", {}), "fixres_from": ck["config"]["input_size"]}
    return out


def clean_features(split: str, size: int, frozen_blocks: int | None, folder: Path,
                   backbone: str = "efficientnet-lite0") -> np.ndarray:
    """[1, n, C, H, W] frozen-stem features of the split's images, each resized whole to
    ``size`` px (the view the engine sees), cached in ``folder``."""
    import onnxruntime as ort

    from .dataset import image_path, load_samples
    from .prepare import export_stem, load_rgb, normalise, resize

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"stem_{split}_{size}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    stem = folder / f"stem_{size}.onnx"
    export_stem(backbone, stem, size, frozen_blocks)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(stem), so, providers=["CPUExecutionProvider"])
    subset = [s for s in load_samples() if s.split == split]
    chunks = []
    for i in range(0, len(subset), 128):
        batch = np.stack([resize(load_rgb(image_path(s)), size) for s in subset[i:i + 128]])
        chunks.append(sess.run(None, {"image": normalise(batch)})[0].astype(np.float16))
    feats = np.concatenate(chunks)[None]
    np.save(str(path) + ".tmp.npy", feats)
    Path(str(path) + ".tmp.npy").replace(path)
    (folder / f"stem_{split}_{size}.json").write_text(json.dumps([s.image for s in subset]))
    return feats


def measure(checkpoint: str, sizes: list[int], out: Path, split: str = "val") -> dict:
    """Top-1 (one view, default question) and VQA average at each size on ``split``; writes
    ``out/<size>/model.pt`` and ``out/fixres.json``."""
    import torch

    from core.model.knowledge import KnowledgeBase

    from .model import KB_LEVELS, ModelConfig, RsSageModel
    from .training import TrainData, default_cache, evaluate_split

    if split == "test":
        raise RsSageError("Sizes are chosen on validation; the test split is run once, by python -m core eval.")
    torch.set_num_threads(2)
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    base = ModelConfig.from_dict(ck["config"])
    kb = KnowledgeBase.load(user_dir=False)
    kb_emb = [torch.from_numpy(kb.embeddings[kb.level_rows[lv]]) for lv in KB_LEVELS]
    data = TrainData(Path(default_cache(base.input_size, base.frozen_blocks, base.backbone)), kb)
    images = data.split[split]["images"]
    log: dict = {"checkpoint": checkpoint, "split": split, "n": len(images), "sizes": {}}
    for size in sizes:
        sized = resized_checkpoint(ck, size)
        model = RsSageModel(ModelConfig.from_dict(sized["config"]), pretrained=False)
        model.load_state_dict(sized["model"])
        feats = clean_features(split, size, base.frozen_blocks, out / "features", base.backbone)
        if json.loads((out / "features" / f"stem_{split}_{size}.json").read_text()) != images:
            raise RsSageError("The feature cache lists other images than the training cache.")
        data.split[split]["feats"] = feats
        r = evaluate_split(model, data, split, kb_emb)
        log["sizes"][str(size)] = {"correct": round(r["acc"] * r["n"]), "acc": round(r["acc"], 4),
                                   "vqa_avg": round(r["vqa_avg"], 4), "vqa": r["vqa"]}
        print(f"{size} px: {log['sizes'][str(size)]['correct']}/{r['n']}", flush=True)
        (out / str(size)).mkdir(parents=True, exist_ok=True)
        torch.save(sized, out / str(size) / "model.pt")
    (out / "fixres.json").write_text(json.dumps(log, indent=2) + "\n")
    return log


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rs_sage_dev.fixres", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=".checkpoints/full/model.pt")
    p.add_argument("--sizes", type=int, nargs="+", default=[160, 192, 224])
    p.add_argument("--out", default=".checkpoints/fixres")
    args = p.parse_args(argv)
    measure(args.checkpoint, args.sizes, Path(args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
