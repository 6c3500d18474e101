"""The remote-sensing knowledge base: entries on three levels, embedded and searched with FAISS.

Level names: ``scene``, ``object`` and ``attribute`` (the model's fine level). The shipped base
lives in ``resources/knowledge``; a user's own entries live outside the plugin folder and are
searched together with it.

Search is exact (``IndexFlatIP``): the base holds a few thousand 384-d vectors, so a brute-force
inner product over all of them costs microseconds, and an approximate index would only add
recall loss and a training step for no speed we could notice.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import KnowledgeBaseError
from ..setup.paths import KB_DIR, user_kb_dir

LEVELS = ("scene", "object", "attribute")
LEVEL_ALIASES = {"fine": "attribute", "attributes": "attribute", "objects": "object",
                 "scenes": "scene"}
ENTRIES_FILE = "entries.jsonl"
EMBEDDINGS_FILE = "embeddings.npy"
MANIFEST_FILE = "manifest.json"


@dataclass
class Entry:
    id: str
    level: str
    name: str
    text: str
    source: str
    aliases: list[str] = field(default_factory=list)

    def embedding_text(self) -> str:
        return f"{self.name}. {self.text}"


def normalise_level(level: str) -> str:
    lv = LEVEL_ALIASES.get(level.strip().lower(), level.strip().lower())
    if lv not in LEVELS:
        raise KnowledgeBaseError(
            f"Unknown level '{level}'. Use one of: {', '.join(LEVELS)} (or 'fine' for attribute)."
        )
    return lv


def checksum(folder: Path) -> str:
    """sha256 over the entries and the embeddings, the two files the runtime depends on."""
    h = hashlib.sha256()
    for name in (ENTRIES_FILE, EMBEDDINGS_FILE):
        h.update((folder / name).read_bytes())
    return h.hexdigest()


def read_entries(path: Path) -> list[Entry]:
    with open(path, encoding="utf-8") as f:
        return [Entry(**json.loads(line)) for line in f if line.strip()]


def read_user_entries(path: Path, warn=None) -> list[Entry]:
    """The user's entries; a broken line is skipped with a warning naming file and line, so one
    bad edit never stops classification (the shipped base is checksummed and read strictly)."""
    import logging

    warn = warn or logging.getLogger("rs_sage").warning
    out = []
    with open(path, encoding="utf-8-sig", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                entry = Entry(**{k: row[k] for k in ("id", "level", "name", "text", "source")},
                              aliases=list(row.get("aliases") or []))
                if not entry.name.strip() or not entry.text.strip():
                    raise ValueError("empty name or text")
                normalise_level(entry.level)
            except (ValueError, KeyError, TypeError, KnowledgeBaseError) as exc:
                warn(f"{path}, line {n}: skipped, not a valid entry ({exc}).")
                continue
            out.append(entry)
    return out


def write_entries(path: Path, entries: list[Entry]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for e in entries:
            f.write(json.dumps(asdict(e), ensure_ascii=False, sort_keys=True) + "\n")


class KnowledgeBase:
    """Shipped plus user entries, with one exact inner-product FAISS index per level."""

    def __init__(self, entries: list[Entry], embeddings: np.ndarray, manifest: dict):
        import faiss

        # A search here is ~10^5 multiply-adds: OpenMP fan-out costs more than it saves
        # (measured 32 ms with threads vs 0.8 ms single-threaded for 64 queries x 3 levels).
        faiss.omp_set_num_threads(1)
        self.entries = entries
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.manifest = manifest
        self.level_rows: dict[str, np.ndarray] = {}
        self.indexes: dict[str, faiss.IndexFlatIP] = {}
        for level in LEVELS:
            rows = np.array([i for i, e in enumerate(entries) if e.level == level], dtype=np.int64)
            index = faiss.IndexFlatIP(self.embeddings.shape[1])
            if len(rows):
                index.add(self.embeddings[rows])
            self.level_rows[level] = rows
            self.indexes[level] = index

    @property
    def checksum(self) -> str:
        return self.manifest["checksum"]

    @classmethod
    def load(cls, kb_dir: Path | None = None, user_dir: Path | None | bool = None) -> KnowledgeBase:
        """Load and verify the shipped base; add the user's entries unless ``user_dir=False``."""
        from .text_encoder import DIM, ENCODER_NAME

        kb_dir = Path(kb_dir or KB_DIR)
        manifest_path = kb_dir / MANIFEST_FILE
        if not manifest_path.is_file():
            raise KnowledgeBaseError(
                f"No knowledge base in {kb_dir}. Build it with 'python -m core kb build'."
            )
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("encoder") != ENCODER_NAME or manifest.get("dim") != DIM:
            raise KnowledgeBaseError(
                f"Knowledge base in {kb_dir} was embedded with {manifest.get('encoder')} "
                f"({manifest.get('dim')}-d) but this RS-SAGE uses {ENCODER_NAME} ({DIM}-d). "
                "Rebuild it with 'python -m core kb build'."
            )
        actual = checksum(kb_dir)
        if actual != manifest.get("checksum"):
            raise KnowledgeBaseError(
                f"Knowledge base files in {kb_dir} do not match their manifest checksum "
                f"(expected {manifest.get('checksum', '?')[:12]}, found {actual[:12]}). "
                "They were modified or partly copied; rebuild with 'python -m core kb build'."
            )
        entries = read_entries(kb_dir / ENTRIES_FILE)
        embeddings = np.load(kb_dir / EMBEDDINGS_FILE)
        if len(entries) != len(embeddings):
            raise KnowledgeBaseError(f"{kb_dir}: {len(entries)} entries but {len(embeddings)} vectors")
        if user_dir is not False:
            folder = Path(user_dir) if user_dir else user_kb_dir()
            if folder.exists() and not folder.is_dir():
                raise KnowledgeBaseError(f"The user knowledge folder {folder} is a file; give the folder that "
                                         "holds (or will hold) your entries.")
            user = UserKnowledge(folder)
            u_entries, u_emb = user.load()
            if u_entries:
                entries = entries + u_entries
                embeddings = np.concatenate([embeddings, u_emb])
        return cls(entries, embeddings, manifest)

    def search(self, vectors: np.ndarray, level: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k entries of one level for a batch [B, d]: entry rows [B, k] and scores [B, k].

        Rows index ``self.entries``; where the level has fewer than k entries, rows are -1.
        """
        level = normalise_level(level)
        q = np.ascontiguousarray(vectors, dtype=np.float32)
        if q.ndim != 2 or q.shape[1] != self.embeddings.shape[1]:
            raise KnowledgeBaseError(f"search expects vectors [B, {self.embeddings.shape[1]}], got {q.shape}")
        scores, local = self.indexes[level].search(q, k)
        rows = np.where(local >= 0, self.level_rows[level][np.clip(local, 0, None)], -1)
        return rows, scores

    def search_levels(
        self, vectors: np.ndarray, k: int, levels: tuple[str, ...] = ("attribute", "object", "scene")
    ) -> tuple[np.ndarray, np.ndarray]:
        """Batched over levels: vectors [B, L, d] -> rows [B, L, k], scores [B, L, k]."""
        rows = np.empty((vectors.shape[0], len(levels), k), dtype=np.int64)
        scores = np.empty((vectors.shape[0], len(levels), k), dtype=np.float32)
        for i, level in enumerate(levels):
            rows[:, i], scores[:, i] = self.search(vectors[:, i], level, k)
        return rows, scores

    def rows_of(self, level: str) -> list[Entry]:
        return [self.entries[i] for i in self.level_rows[normalise_level(level)]]


class UserKnowledge:
    """The user's own entries: JSONL plus embeddings, in a folder outside the plugin."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def load(self) -> tuple[list[Entry], np.ndarray]:
        path = self.folder / ENTRIES_FILE
        if not path.is_file():
            return [], np.zeros((0, 384), np.float32)
        entries = read_user_entries(path)
        emb_path = self.folder / EMBEDDINGS_FILE
        emb = _read_embeddings(emb_path)
        if emb is None or len(emb) != len(entries):  # missing, damaged or stale: re-embed, never guess
            if emb_path.is_file() and emb is None:
                import logging

                logging.getLogger("rs_sage").warning(
                    f"{emb_path} was damaged; rebuilt from {path}.")
            emb = _embed(entries) if entries else np.zeros((0, 384), np.float32)
            _save_atomic(emb_path, emb)
        return entries, emb

    def add(self, items: list[dict], shipped: list[Entry]) -> list[Entry]:
        """Validate every item first, then append all of them, so a bad row changes nothing.

        Under a lock (several ``kb add`` at once all keep their entries), and append-only: lines
        of the user's file this reader cannot parse stay exactly as they were."""
        self.folder.mkdir(parents=True, exist_ok=True)
        with _FolderLock(self.folder):
            return self._add_locked(items, shipped)

    def _add_locked(self, items: list[dict], shipped: list[Entry]) -> list[Entry]:
        existing, emb = self.load()
        taken = {(e.level, e.name.lower()) for e in shipped + existing}
        new: list[Entry] = []
        if len(items) > MAX_IMPORT_ENTRIES:
            raise KnowledgeBaseError(f"{len(items)} entries in one import; the limit is {MAX_IMPORT_ENTRIES}.")
        for n, item in enumerate(items, 1):
            where = f"entry {n}" if len(items) > 1 else "entry"
            for key in ("level", "name", "text"):
                value = item.get(key)
                if value is not None and not isinstance(value, str):
                    raise KnowledgeBaseError(f"{where}: {key} must be text, not {type(value).__name__} {value!r}.")
                if isinstance(value, str) and ("\0" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value)):
                    raise KnowledgeBaseError(f"{where}: {key} holds a NUL byte or bytes that are not UTF-8.")
            level = normalise_level(_text(item.get("level")))
            name = _text(item.get("name"))
            text = _text(item.get("text"))
            if len(name) > MAX_NAME_CHARS or len(text) > MAX_TEXT_CHARS:
                raise KnowledgeBaseError(f"{where} '{name[:40]}': name over {MAX_NAME_CHARS} or text over "
                                         f"{MAX_TEXT_CHARS} characters.")
            if not name:
                raise KnowledgeBaseError(f"{where}: the name is empty.")
            if not text:
                raise KnowledgeBaseError(
                    f"{where} '{name}': the text is empty; describe what it looks like from above."
                )
            if (level, name.lower()) in taken:
                raise KnowledgeBaseError(f"{where}: a {level} entry named '{name}' already exists.")
            taken.add((level, name.lower()))
            new.append(Entry(id=f"user:{level}:{name.lower()}", level=level, name=name, text=text,
                             source="user", aliases=_aliases(item.get("aliases"))))
        if not new:
            raise KnowledgeBaseError("Nothing to add: the file holds no entries.")
        new_emb = _embed(new)
        path = self.folder / ENTRIES_FILE
        with open(path, "ab") as f:
            if f.tell() > 0:
                with open(path, "rb") as r:
                    r.seek(-1, os.SEEK_END)
                    if r.read(1) != b"\n":
                        f.write(b"\n")
            for e in new:
                f.write((json.dumps(asdict(e), ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        _save_atomic(self.folder / EMBEDDINGS_FILE, np.concatenate([emb, new_emb]).astype(np.float32))
        return new


def _read_embeddings(path: Path) -> np.ndarray | None:
    """The user embeddings, or None when missing or not an (n, 384) float array (garbage, a
    truncated file, a pickled object array)."""
    if not path.is_file():
        return None
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None
    if arr.ndim != 2 or arr.shape[1] != 384 or arr.dtype.kind != "f" or not np.isfinite(arr).all():
        return None
    return arr.astype(np.float32)


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, arr)
    os.replace(tmp, path)


class _FolderLock:
    """An exclusive lock on ``<folder>/.lock`` (fcntl on POSIX, msvcrt on Windows)."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / ".lock"

    def __enter__(self):
        self.f = open(self.path, "a+b")
        try:
            import fcntl

            fcntl.flock(self.f.fileno(), fcntl.LOCK_EX)
        except ImportError:  # Windows
            import msvcrt
            import time

            while True:
                try:
                    msvcrt.locking(self.f.fileno(), msvcrt.LK_LOCK, 1)
                    break
                except OSError:
                    time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        try:
            import fcntl

            fcntl.flock(self.f.fileno(), fcntl.LOCK_UN)
        except ImportError:
            pass
        self.f.close()


MAX_IMPORT_ENTRIES = 10_000
MAX_NAME_CHARS = 100
MAX_TEXT_CHARS = 1_000
MAX_IMPORT_BYTES = 5 * 1024 * 1024


def _text(value) -> str:
    """A cell as text: missing (None, absent CSV cell) is empty, never the string 'None'."""
    return "" if value is None else str(value).strip()


def _aliases(value) -> list[str]:
    """A list as given, or one string split on ';' or ',' (a CSV cell), never into characters."""
    if value is None:
        return []
    if isinstance(value, str):
        import re

        return [a.strip() for a in re.split(r"[;,|]", value) if a.strip()]
    if isinstance(value, (list, tuple)):
        return [str(a).strip() for a in value if str(a).strip()]
    raise KnowledgeBaseError(f"aliases must be a list or a ';'-separated string, not {type(value).__name__}.")


def read_import_file(path: Path) -> list[dict]:
    """Entries from a JSON list (or {"entries": [...]}) or a CSV with level,name,text columns."""
    path = Path(path)
    if not path.is_file():
        raise KnowledgeBaseError(f"File not found: {path}")
    suffix = path.suffix.lower()
    if path.stat().st_size > MAX_IMPORT_BYTES:
        raise KnowledgeBaseError(f"{path} is {path.stat().st_size / 1e6:.1f} MB; the limit is "
                                 f"{MAX_IMPORT_BYTES / 1e6:.0f} MB.")
    try:
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8-sig"))
            if isinstance(data, dict):
                data = data.get("entries")
            if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
                raise KnowledgeBaseError(f"{path}: expected a JSON list of objects with level, name, text.")
            return data
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8-sig") as f:  # Excel writes a BOM
                reader = csv.DictReader(f)
                missing = {"level", "name", "text"} - set(reader.fieldnames or [])
                if missing:
                    raise KnowledgeBaseError(f"{path}: CSV lacks the column(s) {', '.join(sorted(missing))}.")
                return list(reader)
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise KnowledgeBaseError(f"{path} is not valid {suffix[1:].upper()}: {exc}") from exc
    except RecursionError as exc:
        raise KnowledgeBaseError(f"{path} is nested too deeply to be a list of entries.") from exc
    raise KnowledgeBaseError(f"{path}: unsupported file type '{suffix}'; use .json or .csv.")


def _embed(entries: list[Entry]) -> np.ndarray:
    from .text_encoder import shared_encoder

    return shared_encoder().encode([e.embedding_text() for e in entries])
