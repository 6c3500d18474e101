"""Sentence embeddings (all-MiniLM-L6-v2) with onnxruntime and tokenizers: no torch at run time.

One encoder serves the knowledge base, label lists and questions, so every vector lives in the
same 384-d space. The ONNX graph (mean pooling and L2 normalisation inside) and the tokenizer are
shipped in ``resources/text_encoder``, written by ``python -m core export-text`` from the
registry package, and checked against the sha256 recorded there before they are used.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .errors import ModelError
from .paths import TEXT_ENCODER_DIR

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 128
MODEL_FILE = "minilm.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "text_encoder.json"


def verify_text_encoder(folder: Path) -> dict:
    """The folder's settings, after checking both files against their recorded sha256."""
    from .model_files import file_digest

    settings_path = folder / SETTINGS_FILE
    try:
        settings = json.loads(settings_path.read_text())
        expected = settings["files_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"The text encoder settings {settings_path} are missing or unreadable ({exc}); "
                         "reinstall the plugin or run 'python -m core export-text'.") from exc
    for name in (MODEL_FILE, TOKENIZER_FILE):
        path = folder / name
        if not path.is_file():
            raise ModelError(f"Text encoder file missing: {path}. Reinstall the plugin or run "
                             "'python -m core export-text'.")
        if file_digest(path) != expected.get(name):
            raise ModelError(f"{path} does not match the checksum recorded at export (damaged, truncated "
                             "or modified); reinstall the plugin or run 'python -m core export-text'.")
    return settings


class TextEncoder:
    """Mean-pooled, L2-normalised MiniLM embeddings with a small LRU cache.

    Label lists and questions repeat (every tile of a classify run uses the same labels), so the
    cache turns most calls into dictionary look-ups.
    """

    def __init__(self, cache_size: int = 4096, batch_size: int = 64, folder: Path | None = None,
                 providers: list[str] | None = None):
        self._folder = Path(folder or TEXT_ENCODER_DIR)
        self._providers = providers or ["CPUExecutionProvider"]
        self._session = None
        self._tokenizer = None
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._batch_size = batch_size
        self._lock = threading.Lock()

    def _load(self) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        settings = verify_text_encoder(self._folder)
        tok = Tokenizer.from_file(str(self._folder / TOKENIZER_FILE))
        tok.enable_truncation(max_length=int(settings.get("max_tokens", MAX_TOKENS)))
        tok.enable_padding(pad_id=tok.token_to_id("[PAD]") or 0, pad_token="[PAD]")
        so = ort.SessionOptions()
        # Basic fusions only: the full level costs ~100 ms more to load for no measurable gain on
        # a few short texts (9.1 against 9.6 ms for four).
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        self._session = ort.InferenceSession(str(self._folder / MODEL_FILE), so, providers=self._providers)
        self._tokenizer = tok

    def _embed_uncached(self, texts: list[str]) -> np.ndarray:
        out = [np.zeros((0, DIM), np.float32)]
        for i in range(0, len(texts), self._batch_size):
            enc = self._tokenizer.encode_batch(texts[i:i + self._batch_size])
            feed = {
                "input_ids": np.array([e.ids for e in enc], np.int64),
                "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
                "token_type_ids": np.array([e.type_ids for e in enc], np.int64),
            }
            out.append(self._session.run(None, feed)[0])
        return np.concatenate(out).astype(np.float32)

    def encode(self, texts: list[str] | str) -> np.ndarray:
        """Embeddings [N, 384] (float32, unit length) in the order given."""
        if isinstance(texts, str):
            texts = [texts]
        with self._lock:
            if self._session is None:
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

    def split_joined(self, text: str) -> str:
        """``text`` with run-together words split where the vocabulary says so: "sandbeach" ->
        "sand beach", "parkinglot" -> "parking lot". WordPiece cuts such a word into pieces
        ("sand", "##be", "##ach") whose embedding is far from either word, so a user's
        "sandbeach" scored as "marina" (validation images: 26 of 31 beach images). A word is
        split only when it is not itself in the vocabulary and splits into two words that are,
        each at least 3 letters long (the split with the longer shorter part wins), and is not
        the plural of a word in the vocabulary."""
        with self._lock:
            if self._session is None:
                self._load()
            vocab = self._tokenizer.token_to_id

        def split(word: str) -> str:
            w = word.lower()
            if len(w) < 6 or not w.isalpha() or vocab(w) is not None:
                return word
            if w.endswith("s") and (vocab(w[:-1]) is not None or (w.endswith("es") and vocab(w[:-2]) is not None)):
                return word  # a plural of a known word: "greenhouses" is not "green houses"
            cuts = [(min(i, len(w) - i), i) for i in range(3, len(w) - 2)
                    if vocab(w[:i]) is not None and vocab(w[i:]) is not None]
            if not cuts:
                return word
            i = max(cuts)[1]
            return f"{word[:i]} {word[i:]}"

        return " ".join(split(word) for word in text.split())

    def preload(self) -> None:
        """Load the session now (e.g. in a thread while the image model loads); errors surface at
        the first encode instead."""
        try:
            with self._lock:
                if self._session is None:
                    self._load()
        except Exception:  # noqa: BLE001 - reported, with its message, by the first encode()
            pass

    def close(self) -> None:
        """Drop the onnxruntime session and the cache (the plugin calls this on unload)."""
        with self._lock:
            self._session = self._tokenizer = None
            self._cache.clear()


_shared: TextEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> TextEncoder:
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = TextEncoder()
        return _shared


def release_shared_encoder() -> None:
    """Free the shared encoder's memory; the next ``shared_encoder()`` loads it again."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
        _shared = None
