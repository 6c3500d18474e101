"""``python -m rs_sage_dev.int8_layers WORK_DIR [VARIANT ...]``: which image-encoder layers to
leave in float32, chosen on validation images only (AID validation, 566; our EuroSAT validation
split, 1,543), before the test gate of ``ship --requantize`` runs.

Each variant is the shipped float model with the encoder quantised one way (experts float32, so
the encoder's effect is seen alone). For each: validation accuracy with the plain names and 4
views, the predictions that differ from float32 ("flips"), and the encoder's time per 160 px tile
(batch 32, best of 3, 2 threads; compare only inside one run). Results go to
``WORK_DIR/results.jsonl`` (copied to ``docs/selection_logs/int8_encoder_layers.jsonl``; the rule
and its table are in ``int8_encoder_layers_rule.md`` there).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from core.setup.paths import MODEL_DIR

from . import quantize as q


def variants(model_dir: Path) -> dict[str, dict | None]:
    """name -> quantisation options of the encoder (None: float32, the reference)."""
    from onnxruntime.quantization import CalibrationMethod

    encoder = model_dir / "encoder.onnx"

    def float_layers(*prefixes: str) -> dict:
        return {"nodes_to_exclude": q.float_nodes(encoder, prefixes)}

    def stem(k: int) -> tuple[str, ...]:
        """conv_stem and the first ``k`` blocks."""
        return ("/enc/stem/conv_stem/", *(f"/enc/stem/blocks.{j}/" for j in range(k)))

    depthwise = [n for n in q.float_nodes(encoder, ("/enc/",)) if "depthwise" in n]
    return {
        "float32": None,
        "all_int8": {},
        "all_int8_500_images": {"n": 500},
        "percentile_calibration": {"calibrate_method": CalibrationMethod.Percentile},
        "projectors_float": float_layers("/enc/projectors"),
        "depthwise_float": {"nodes_to_exclude": depthwise},
        "stem_conv_float": float_layers(*stem(0)),
        "stem_block0_float": float_layers(*stem(1)),
        "stem_blocks01_float": float_layers(*stem(2)),
        "stem_blocks012_float": float_layers(*stem(3)),
        "stem_block0_projectors_float": float_layers(*stem(1), "/enc/projectors"),
    }


def build(work: Path, name: str, options: dict | None, model_dir: Path = MODEL_DIR) -> Path:
    from core.model.model_files import write_checksums

    out = work / name
    if (out / "model.json").is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    if options is None:
        shutil.copy(model_dir / "encoder.onnx", out / "encoder.onnx")
    else:
        options = dict(options)
        feeds = q.encoder_feeds(options.pop("n", 200), model_dir)
        q._quantize_static(model_dir / "encoder.onnx", out / "encoder.onnx", feeds, **options)
    for name_ in ("experts.onnx", "model.json"):
        shutil.copy(model_dir / name_, out / name_)
    write_checksums(out)
    return out


def encoder_ms_per_tile(model_dir: Path, batch: int = 32) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(model_dir / "encoder.onnx"), so, providers=["CPUExecutionProvider"])
    s = q.input_size(model_dir)
    x = np.random.default_rng(0).uniform(0, 255, (batch, 3, s, s)).astype(np.float32)
    sess.run(None, {"image": x[:4]})
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        sess.run(None, {"image": x})
        best = min(best, time.perf_counter() - t)
    return round(1000 * best / batch, 2)


def validation_predictions(model_dir: Path, cache: bool = True) -> dict[str, np.ndarray]:
    """Plain-name predictions and scene embeddings of the AID and EuroSAT validation images;
    with ``cache`` kept in ``model_dir/val_predictions.npz`` (never in a folder that ships)."""
    from core.model.engine import Engine

    from .open_eval import AID_NAMES, EUROSAT_NAMES, embed_paths, split_images

    stored = model_dir / "val_predictions.npz"
    if cache and stored.is_file():
        with np.load(stored) as z:
            return {k: z[k] for k in z.files}
    engine = Engine.load(model_dir, user_kb=False, precision="float32")
    out = {}
    for ds, names in (("aid", AID_NAMES), ("eurosat", EUROSAT_NAMES)):
        paths, labels, _ = split_images(ds, "val")
        emb = embed_paths(engine, paths)
        out[ds] = (emb @ engine.label_embeddings(names).T).argmax(1)
        out[f"{ds}_labels"] = labels
        out[f"{ds}_emb"] = emb
    if cache:
        np.savez(stored, **out)
    return out


def main(work: Path, names: list[str]) -> list[dict]:
    table = variants(MODEL_DIR)
    names = names or list(table)
    ref = validation_predictions(build(work, "float32", None))
    rows = []
    for name in names:
        d = build(work, name, table[name])
        p = validation_predictions(d)
        row = {"variant": name, "encoder_ms_per_tile": encoder_ms_per_tile(d)}
        for ds in ("aid", "eurosat"):
            row[f"{ds}_val_acc"] = round(100 * float((p[ds] == p[f"{ds}_labels"]).mean()), 2)
            row[f"{ds}_flips"] = int((p[ds] != ref[ds]).sum())
            row[f"{ds}_n"] = int(len(p[ds]))
            # A continuous measure of the quantiser's error, far less noisy than flips: the mean
            # of 1 - cosine between the int8 and the float32 scene embeddings (x 1e4).
            cos = (p[f"{ds}_emb"] * ref[f"{ds}_emb"]).sum(1) / (
                np.linalg.norm(p[f"{ds}_emb"], axis=1) * np.linalg.norm(ref[f"{ds}_emb"], axis=1))
            row[f"{ds}_emb_error_1e4"] = round(float(1e4 * (1 - cos).mean()), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
        with open(work / "results.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    return rows


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
