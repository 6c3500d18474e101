"""Static int8 quantisation of the image encoder, calibrated on training images (never test).

``python -m rs_sage_dev.quantize OUT_DIR [N]`` writes OUT_DIR with an int8 ``encoder.onnx`` (QDQ,
per-channel weights), the float experts and a model.json with checksums, for ``python -m core
eval --model-dir OUT_DIR`` and ``bench`` to compare against the float model.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

from core.paths import MODEL_DIR


def calibration_images(n: int = 200, seed: int = 0) -> list[np.ndarray]:
    from PIL import Image

    from .dataset import image_path, load_samples

    train = [s for s in load_samples() if s.split == "train"]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train), size=min(n, len(train)), replace=False)
    return [np.asarray(Image.open(image_path(train[i])).convert("RGB").resize((160, 160), Image.BILINEAR))
            for i in sorted(pick)]


def quantize_encoder(out_dir: Path, n: int = 200) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from core.model_files import write_checksums

    out_dir.mkdir(parents=True, exist_ok=True)
    images = calibration_images(n)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(images)

        def get_next(self):
            img = next(self.it, None)
            if img is None:
                return None
            x = img.astype(np.float32).transpose(2, 0, 1)[None]
            return {"image": np.ascontiguousarray(x)}

    pre = out_dir / "encoder.pre.onnx"
    quant_pre_process(str(MODEL_DIR / "encoder.onnx"), str(pre))
    quantize_static(str(pre), str(out_dir / "encoder.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    pre.unlink()
    shutil.copy(MODEL_DIR / "experts.onnx", out_dir / "experts.onnx")
    meta = json.loads((MODEL_DIR / "model.json").read_text())
    meta["encoder_precision"] = f"int8 (static, QDQ, per-channel; {len(images)} training images)"
    (out_dir / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(out_dir)
    return out_dir / "encoder.onnx"


GATE_PT = 0.3  # the most top-1 / OOD accuracy, in points, the int8 encoder may lose to be offered


def install_int8(measured_dir: Path, gate: dict, model_dir: Path = MODEL_DIR) -> dict:
    """Ship the measured int8 encoder beside the float one, with the numbers of its gate.

    ``gate``: {"float32": {...}, "int8": {...}} of the same metrics (percent). Accepted only if no
    metric drops by more than GATE_PT; the engine uses it (on CPU) only when accepted.
    """
    from core.model_files import write_checksums

    drops = {k: round(gate["float32"][k] - gate["int8"][k], 2) for k in gate["float32"]}
    accepted = all(d <= GATE_PT for d in drops.values())
    shutil.copy(measured_dir / "encoder.onnx", model_dir / "encoder.int8.onnx")
    meta = json.loads((model_dir / "model.json").read_text())
    meta["int8_encoder"] = {"accepted": accepted, "gate_pt": GATE_PT, "drop_pt": drops, **gate,
                            "how": "rs_sage_dev/quantize.py; python -m core eval [--ood] --model-dir on its folder"}
    (model_dir / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    write_checksums(model_dir)
    return meta["int8_encoder"]


if __name__ == "__main__":
    print(quantize_encoder(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 200))
