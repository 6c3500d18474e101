"""Sentence embeddings (all-MiniLM-L6-v2) with onnxruntime and tokenizers: no torch at run time.

One encoder serves the knowledge base, label lists and questions, so every vector lives in the
same 384-d space. The ONNX graph (mean pooling and L2 normalisation inside) and the tokenizer are
shipped in ``resources/text_encoder``, written by ``python -m core export-text`` from the
registry package, and checked against the sha256 recorded there before they are used.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..setup.paths import text_encoder_dir
from .shared import ProcessShared

ENCODER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_TOKENS = 128
MODEL_FILE = "minilm.onnx"
TOKENIZER_FILE = "tokenizer.json"
SETTINGS_FILE = "text_encoder.json"
DISK_CACHE_MAX = 20000  # entries (~1.7 KB each); past it the oldest tenth is dropped


def verify_text_encoder(folder: Path, names: tuple[str, ...] = (MODEL_FILE, TOKENIZER_FILE)) -> dict:
    """The folder's settings, after checking the files (both, or only ``names``: the tokenizer
    alone is enough to split labels) against their recorded sha256."""
    from .model_files import file_digest

    settings_path = folder / SETTINGS_FILE
    try:
        settings = json.loads(settings_path.read_text())
        expected = settings["files_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"The text encoder settings {settings_path} are missing or unreadable ({exc}); "
                         "reinstall the plugin or run 'python -m core export-text'.") from exc
    for name in names:
        path = folder / name
        if not path.is_file():
            raise ModelError(f"Text encoder file missing: {path}. Reinstall the plugin or run "
                             "'python -m core export-text'.")
        if file_digest(path) != expected.get(name):
            raise ModelError(f"{path} does not match the checksum recorded at export (damaged, truncated "
                             "or modified); reinstall the plugin or run 'python -m core export-text'.")
    return settings


class TextEncoder:
    """Mean-pooled, L2-normalised MiniLM embeddings with a small LRU cache in memory and a
    per-machine cache on disk.

    Label lists and questions repeat (every tile of a classify run uses the same labels, and a
    user classifies with the same labels session after session), so the memory cache turns most
    calls into dictionary look-ups and the disk cache lets a fresh QGIS or CLI process answer
    without loading the 45 MB encoder at all (~0.2 s of a cold *Classify extent*). Disk entries
    are keyed by the recorded sha256 of the model and tokenizer, one small .npy per text, written
    atomically; an unreadable or malformed entry is ignored and recomputed.
    """

    def __init__(self, cache_size: int = 4096, batch_size: int = 64, folder: Path | None = None,
                 providers: list[str] | None = None, disk_cache: bool = True):
        self._folder = Path(folder or text_encoder_dir())
        self._providers = providers or ["CPUExecutionProvider"]
        self._session = None
        self._tokenizer = None
        self._vocab = None  # the tokenizer alone (split_joined), when the session is not loaded
        self._disk_cache = disk_cache
        self._disk_dir_value: Path | bool | None = None
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

    def _disk_dir(self) -> Path | None:
        if not self._disk_cache:
            return None
        if self._disk_dir_value is None:
            from .session_cache import cache_dir

            try:
                sha = json.loads((self._folder / SETTINGS_FILE).read_text())["files_sha256"]
                key = hashlib.sha256(f"{sha[MODEL_FILE]} {sha[TOKENIZER_FILE]}".encode()).hexdigest()[:16]
                self._disk_dir_value = cache_dir() / f"text-{key}"
            except (OSError, ValueError, KeyError, TypeError):  # _load() reports the broken settings
                self._disk_dir_value = False
        return self._disk_dir_value or None

    @staticmethod
    def _entry_name(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32] + ".npy"

    def _disk_get(self, texts: list[str]) -> dict[str, np.ndarray]:
        folder, found = self._disk_dir(), {}
        if folder is None or not texts or not folder.is_dir():
            return found
        for t in texts:
            try:
                v = np.load(folder / self._entry_name(t), allow_pickle=False)
            except (OSError, ValueError):
                continue
            if v.shape == (DIM,) and v.dtype == np.float32 and np.isfinite(v).all():
                found[t] = v
        return found

    def _disk_put(self, fresh: dict[str, np.ndarray]) -> None:
        folder = self._disk_dir()
        if folder is None or not fresh:
            return
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._disk_trim(folder, len(fresh))
            for t, v in fresh.items():
                dest = folder / self._entry_name(t)
                tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                with open(tmp, "wb") as f:
                    np.save(f, np.ascontiguousarray(v, np.float32), allow_pickle=False)
                tmp.replace(dest)
        except OSError:  # a read-only or full home: the memory cache still works
            pass

    @staticmethod
    def _disk_trim(folder: Path, adding: int) -> None:
        """Keep the folder under DISK_CACHE_MAX entries: drop the least recently written tenth."""
        entries = [e for e in os.scandir(folder) if e.name.endswith(".npy")]
        if len(entries) + adding <= DISK_CACHE_MAX:
            return
        entries.sort(key=lambda e: e.stat().st_mtime)
        for e in entries[:max(adding, DISK_CACHE_MAX // 10)]:
            try:
                os.unlink(e.path)
            except OSError:
                pass

    def encode(self, texts: list[str] | str) -> np.ndarray:
        """Embeddings [N, 384] (float32, unit length) in the order given."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            return np.zeros((0, DIM), np.float32)
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
            fresh = self._disk_get(missing)
            todo = [t for t in missing if t not in fresh]
            if todo:
                if self._session is None:
                    self._load()
                computed = dict(zip(todo, self._embed_uncached(todo), strict=True))
                self._disk_put(computed)
                fresh.update(computed)
            result = np.stack([fresh[t] if t in fresh else self._cache[t] for t in texts])
            for t in texts:
                if t in fresh:
                    self._cache[t] = fresh[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return result.astype(np.float32)

    def _vocabulary(self):
        """The tokenizer (its vocabulary), without the ONNX session when that is not loaded."""
        if self._tokenizer is not None:
            return self._tokenizer
        if self._vocab is None:
            from tokenizers import Tokenizer

            verify_text_encoder(self._folder, (TOKENIZER_FILE,))
            self._vocab = Tokenizer.from_file(str(self._folder / TOKENIZER_FILE))
        return self._vocab

    def split_joined(self, text: str) -> str:
        """``text`` with run-together words split where the vocabulary says so: "sandbeach" ->
        "sand beach", "parkinglot" -> "parking lot". WordPiece cuts such a word into pieces
        ("sand", "##be", "##ach") whose embedding is far from either word, so a user's
        "sandbeach" scored as "marina" (AID validation beach images with RSI-CB's names: 26 called
        "marina", 3 "river"; ``scripts/wording_val.py --no-split``). A word is
        split only when it is not itself in the vocabulary and splits into two words that are,
        each at least 3 letters long (the split with the longer shorter part wins), and is not
        the plural of a word in the vocabulary."""
        with self._lock:
            vocab = self._vocabulary().token_to_id

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

    def preload(self, only_if_uncached: bool = False) -> None:
        """Load the session now (e.g. in a thread while the image model loads); errors surface at
        the first encode instead. ``only_if_uncached``: when this machine's disk cache already
        holds embeddings, load just the tokenizer (the session loads at the first new text)."""
        try:
            with self._lock:
                folder = self._disk_dir() if only_if_uncached else None
                if folder is not None and folder.is_dir() and any(folder.glob("*.npy")):
                    self._vocabulary()
                elif self._session is None:
                    self._load()
        except Exception:  # noqa: BLE001 - reported, with its message, by the first encode()
            pass

    def close(self) -> None:
        """Drop the onnxruntime session and the cache (the plugin calls this on unload)."""
        with self._lock:
            self._session = self._tokenizer = self._vocab = None
            self._cache.clear()


def label_texts(encoder, labels: list[str]) -> list[str]:
    """The texts an encoder embeds for these labels: run-together words split
    (``TextEncoder.split_joined``) when the encoder can; any other encoder gets them as written."""
    split = getattr(encoder, "split_joined", None)
    return [split(lab) for lab in labels] if split else list(labels)


_shared: ProcessShared[TextEncoder] = ProcessShared(TextEncoder, TextEncoder.close)


def shared_encoder() -> TextEncoder:
    return _shared.get()


def release_shared_encoder() -> None:
    """Free the shared encoder's memory; the next ``shared_encoder()`` loads it again."""
    _shared.release()
