"""``python -m core export``: a trained checkpoint -> ``encoder.onnx`` + ``experts.onnx``.

Everything the runtime needs travels in each file's ``metadata_props`` (JSON values), in the
spirit of Deepness: the engine reads settings from the model, never from code constants.
"""

from __future__ import annotations

import json
from pathlib import Path

from core import __version__
from core.setup.paths import MODEL_DIR

# AID images are 600 px at 0.5-8 m downsized to 150 px: 2-32 m per pixel as seen in training.
GSD_RANGE_M = (2.0, 32.0)
DEFAULT_GSD_M = 4.0
DEFAULT_QUESTION = "What type of scene is this?"


def load_checkpoint(path: str | Path, input_size: int | None = None):
    """The model of a checkpoint, in eval mode, and the checkpoint. ``input_size``: run the same
    weights at another input (the engine's, when it differs from training's; ``fixres``)."""
    import torch

    from core.errors import RsSageError

    from .model import ModelConfig, RsSageModel

    if not Path(path).is_file():
        raise RsSageError(f"Checkpoint not found: {path}")
    try:  # weights_only: a hostile pickle is refused by torch, never executed
        ck = torch.load(path, map_location="cpu", weights_only=True)
        if input_size is not None and input_size != ck["config"]["input_size"]:
            from .fixres import resized_checkpoint

            ck = resized_checkpoint(ck, input_size)
        cfg = ModelConfig.from_dict(ck["config"])
        model = RsSageModel(cfg, pretrained=False)
        model.load_state_dict(ck["model"])
    except RsSageError:
        raise
    except Exception as exc:  # noqa: BLE001 - any damage or foreign file: one line, no traceback
        raise RsSageError(f"{path} is not an RS-SAGE checkpoint ({type(exc).__name__}: {str(exc)[:200]}).") from exc
    return model.eval(), ck


class _EncoderGraph:
    """Encoder with the input normalisation inside the graph: RGB 0..255 in, no constants out."""

    @staticmethod
    def build(model):
        import torch

        class Wrapped(torch.nn.Module):
            def __init__(self, enc):
                super().__init__()
                self.enc = enc

            def forward(self, image):
                return self.enc(image / 127.5 - 1.0)

        return Wrapped(model.encoder).eval()


def export_onnx(checkpoint: str | Path, out_dir: str | Path | None = None) -> dict[str, Path]:
    import onnx
    import torch

    from .dataset import DEFAULT_LABELS
    from .model import KB_LEVELS, LEVELS

    model, ck = load_checkpoint(checkpoint)
    cfg = model.cfg
    out = Path(out_dir or MODEL_DIR)
    out.mkdir(parents=True, exist_ok=True)
    s, d, k, g = cfg.input_size, cfg.dim, cfg.top_k, cfg.grid * cfg.grid
    enc_path, exp_path = out / "encoder.onnx", out / "experts.onnx"
    torch.onnx.export(
        _EncoderGraph.build(model), torch.zeros(2, 3, s, s), str(enc_path), dynamo=False,
        input_names=["image"], output_names=["tokens", "queries"], opset_version=17,
        dynamic_axes={"image": {0: "batch"}, "tokens": {0: "batch"}, "queries": {0: "batch"}},
    )
    dummy = (torch.zeros(2, 3, g, d), torch.zeros(2, 3, k, d), torch.zeros(2, 3, k), torch.zeros(2, d))
    torch.onnx.export(
        model.experts, dummy, str(exp_path), dynamo=False,
        input_names=["tokens", "cues", "cue_scores", "question"],
        output_names=["scene_embedding", "answer_logits", "router"], opset_version=17,
        dynamic_axes={n: {0: "batch"} for n in
                      ("tokens", "cues", "cue_scores", "question", "scene_embedding",
                       "answer_logits", "router")},
    )
    common = {
        "version": __version__,
        "backbone": cfg.backbone,
        "input_size": s,
        "input": "RGB float32 NCHW, values 0..255; normalised inside the graph (x/127.5-1)",
        "levels": list(LEVELS),
        "kb_levels": list(KB_LEVELS),
        "gsd_range_m": list(GSD_RANGE_M),
        "default_gsd_m": DEFAULT_GSD_M,
        "kb_checksum": ck["kb_checksum"],
        "top_k": k,
        "question_weight": cfg.question_weight,
        "variant": ck["train"]["variant"],
        "config": cfg.to_dict(),
    }
    extra = {
        "encoder.onnx": {"model_type": "rs_sage_encoder"},
        "experts.onnx": {
            "model_type": "rs_sage_experts",
            "answers": ck["answers"],
            "logit_scale": float(model.experts.logit_scale.detach().exp().clamp(max=100)),
            "default_labels": DEFAULT_LABELS,
            "default_question": DEFAULT_QUESTION,
        },
    }
    # The same settings as a small JSON sidecar: the QGIS panel reads defaults from it without
    # importing onnx or onnxruntime at start-up. The ONNX metadata stays the source of truth.
    sidecar = {**common, **extra["experts.onnx"], "model_type": "rs_sage"}
    (out / "model.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    for path in (enc_path, exp_path):
        m = onnx.load(str(path))
        del m.metadata_props[:]
        for key, value in {**common, **extra[path.name]}.items():
            m.metadata_props.add(key=key, value=json.dumps(value))
        onnx.save(m, str(path))
    from core.model.model_files import write_checksums

    write_checksums(out)
    return {"encoder": enc_path, "experts": exp_path}
