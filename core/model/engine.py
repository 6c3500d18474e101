"""The one runtime entry point: ONNX encoder -> FAISS retrieval -> ONNX expert network.

Used by the plugin, the Processing algorithms, the CLI and batch workers. Thread-safe after
``load``: onnxruntime sessions and FAISS flat indexes are safe for concurrent reads, and the text
encoder and label cache take locks.
"""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError, RsSageError
from ..questions.question_parse import parse_question
from ..setup.paths import model_dir as default_model_dir
from .shared import ProcessShared

BATCH = 64
# Views averaged per image: overhead imagery has no "up", so the model is asked about rotated
# copies and its class probabilities (and answer probabilities) are averaged. Four rotations
# were chosen on validation images (scripts/tta_val.py); 1 view is the fast path.
VIEW_SETS = {1: (0,), 2: (0, 4), 4: (0, 1, 2, 3), 8: tuple(range(8))}
DEFAULT_VIEWS = 4


@dataclass
class Cue:
    name: str
    score: float


@dataclass
class ClassifyResult:
    label: str
    score: float
    top: list[tuple[str, float]]
    cues: dict[str, list[Cue]]
    router: dict[str, float]
    uncertain: bool = False  # no label fits, not a scene, or two labels too close to call
    match: float = 0.0  # cosine of the scene embedding and the top label's text (absolute, not relative)
    reason: str = ""  # why it is uncertain: "no label fits", "not a scene: noise", "ambiguous"
    # The tile's scene embedding (what ``Engine.embed`` gives), kept out of to_dict and JSON.
    embedding: np.ndarray | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("embedding", None)
        return d


def relative_score(p: float, n: int) -> float:
    """The top probability rescaled so 0 is chance (1/n) and 1 is certainty: comparable across
    label lists of different lengths, which the uncertainty threshold needs."""
    return (p - 1.0 / n) / (1.0 - 1.0 / n) if n > 1 else 1.0


@dataclass
class AskResult:
    answer: str
    text: str
    confidence: float
    type: str
    cues: dict[str, list[Cue]]
    router: dict[str, float]
    scene: str = ""
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    uncertain: bool = False  # the tile's scene label is under the model's uncertainty threshold

    def to_dict(self) -> dict:
        return asdict(self)


def question_labels(parsed, labels: list[str]) -> list[str]:
    """The label list a share or comparison question is answered over: the user's labels plus the
    things the question names, in the user's own words (not repeated if already there)."""
    extra = [t for t in (parsed.subject, parsed.other) if t] if parsed.type in ("share", "comparison") else []
    known = {lab.casefold() for lab in labels}
    return list(labels) + [t for t in extra if t.casefold() not in known]


def _metadata(session) -> dict:
    out = {}
    for k, v in session.get_modelmeta().custom_metadata_map.items():
        try:
            out[k] = json.loads(v)
        except ValueError:  # tools (e.g. the quantiser) add plain-text entries of their own
            out[k] = v
    return out


def label_templates(value) -> tuple[str, ...]:
    """The model's ``label_templates`` setting, checked: sentences with one ``{}`` where a label
    goes; absent means the bare label, as every model before 0.3.0 was used."""
    if value is None:
        return ("{}",)
    if (not isinstance(value, list) or not value
            or not all(isinstance(t, str) and t.count("{}") == 1 for t in value)):
        raise ModelError(f"The model's label_templates must be a list of texts, each with one '{{}}'; got {value!r}. "
                         "Reinstall the model pack.")
    return tuple(value)


def _unit_view_mean(emb: np.ndarray) -> np.ndarray:
    """[B, V, d] per-view scene embeddings -> [B, d] their mean, unit length (Engine.embed's vectors)."""
    m = emb.mean(1)
    return (m / (np.linalg.norm(m, axis=-1, keepdims=True) + 1e-12)).astype(np.float32)


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def as_batch(images) -> list[np.ndarray]:
    """Accept one HxWx3 uint8 array, a list of them, or an NxHxWx3 array; check each."""
    if isinstance(images, np.ndarray) and images.ndim == 4:
        images = list(images)
    elif isinstance(images, np.ndarray):
        images = [images]
    if not isinstance(images, list | tuple) or not len(images):
        raise RsSageError("No image given: pass an HxWx3 uint8 array or a list of them.")
    out = []
    for i, img in enumerate(images):
        if not isinstance(img, np.ndarray):
            raise RsSageError(f"image {i}: expected a numpy array, got {type(img).__name__}")
        if img.dtype != np.uint8:
            raise RsSageError(f"image {i}: expected uint8 RGB values, got {img.dtype}; "
                              "stretch 16-bit or float imagery to 0..255 first")
        if img.ndim != 3 or img.shape[2] != 3 or min(img.shape[:2]) < 8:
            raise RsSageError(f"image {i}: expected shape HxWx3 with H, W >= 8, got {img.shape}")
        out.append(img)
    return out


def dihedral(batch: np.ndarray, k: int) -> np.ndarray:
    """View k of an NCHW batch: rotation by k*90 degrees, mirrored for k >= 4."""
    out = np.rot90(batch, k % 4, axes=(2, 3))
    return np.ascontiguousarray(out[..., ::-1] if k >= 4 else out)


# Best first; whichever the installed onnxruntime build has is used (CUDA: onnxruntime-gpu on
# Linux/Windows, DirectML: onnxruntime-directml on Windows, CoreML: the macOS wheels).
PREFERRED_PROVIDERS = ["CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider",
                       "CPUExecutionProvider"]


class Engine:
    def __init__(self, encoder, experts, kb, text_encoder, views: int = DEFAULT_VIEWS):
        if views not in VIEW_SETS:
            raise RsSageError(f"views must be one of {sorted(VIEW_SETS)}, got {views}")
        self.encoder, self.experts, self.kb, self.text = encoder, experts, kb, text_encoder
        self.views = views
        self.meta = _metadata(experts)
        enc_meta = _metadata(encoder)
        self.input_size = int(enc_meta["input_size"])
        self.top_k = int(self.meta["top_k"])
        self.question_weight = float(self.meta["question_weight"])
        self.answers: list[str] = self.meta["answers"]
        self.logit_scale = float(self.meta["logit_scale"])
        self.default_labels: list[str] = self.meta["default_labels"]
        self.levels: list[str] = self.meta["levels"]
        self.kb_levels: list[str] = self.meta["kb_levels"]
        self._labels_lock = threading.Lock()
        self._label_cache: dict[tuple[str, ...], np.ndarray] = {}
        self._default_u = None
        # Tiles whose relative top score is below this are marked uncertain (0: never);
        # chosen on validation images by ``python -m core calibrate``.
        self.uncertain_below = float(self.meta.get("uncertain_below", 0.0))
        # "None of these": a tile whose best label's cosine is under this matches none of them.
        # It also enters the softmax as one more logit, so a single label never scores 1.00 by
        # construction. Chosen on validation (``python -m core open-eval --calibrate``); -1: never.
        self.match_below = float(self.meta.get("match_below", -1.0))
        # A label is embedded inside each of these sentences and the embeddings averaged (prompt
        # ensembling, as CLIP's zero-shot classifiers do): the bare word "town" sat far from the
        # urban images the model was trained towards with caption sentences. Chosen on validation
        # (docs/selection_logs/label_templates_rule.md); ("{}",) is the bare label.
        self.label_templates = label_templates(self.meta.get("label_templates"))
        self.model_dir: Path | None = None
        self.user_kb_dir: Path | None = None
        self.precision = "float32"  # of the image encoder: "int8" when the quantised one is used
        self.experts_precision = "float32"  # of the experts graph, likewise

    @classmethod
    def load(cls, model_dir: str | Path | None = None, kb_dir=None, user_kb=None,
             providers: list[str] | None = None, views: int = DEFAULT_VIEWS,
             threads: int | None = None, precision: str = "auto",
             experts_precision: str | None = None) -> Engine:
        """``precision``: "auto" takes the int8 image encoder and the int8 experts on CPU when the
        model ships them and they passed their accuracy gates (``model.json``
        ``int8_encoder.accepted``, ``int8_experts.accepted``), else float32; "int8" forces both
        (where the files exist), "float32" neither. ``experts_precision`` overrides it for the
        experts (a Dask worker reproducing exactly what its client runs)."""
        import onnxruntime as ort

        from .knowledge import KnowledgeBase
        from .text_encoder import shared_encoder

        ort.set_default_logger_severity(4)  # silence "CUDA not found" lines on CPU machines
        ort.disable_telemetry_events()  # belt and braces: ORT_DISABLE_TELEMETRY (core/__init__) stops the client
        if model_dir is not None and not isinstance(model_dir, (str, Path)):
            raise RsSageError(f"model_dir must be a folder path, not {type(model_dir).__name__} {model_dir!r}.")
        import numbers

        if threads is not None and (isinstance(threads, bool) or not isinstance(threads, numbers.Integral)
                                    or threads < 1):
            raise RsSageError(f"threads must be a whole number of at least 1, not {threads!r}.")
        model_dir = Path(model_dir or default_model_dir())
        paths = [model_dir / "encoder.onnx", model_dir / "experts.onnx"]
        for p in paths:
            if not p.is_file():
                raise ModelError(f"Model file missing: {p}. Reinstall the plugin or run "
                                 "'python -m core export'.")
        from .model_files import verify

        verify(model_dir, [])  # model.json readable and with checksums; each file is checked before it is parsed
        # The text encoder loads beside the image model and the first tiles (the first click needs
        # both): ~0.2-0.3 s saved; only its tokenizer when this machine's disk cache already holds
        # embeddings (the session then loads at the first new text). A thread still inside
        # onnxruntime when the interpreter exits crashes it, so it is joined on failure here and
        # at exit (atexit) otherwise.
        text_loader = threading.Thread(target=shared_encoder().preload, kwargs={"only_if_uncached": True},
                                       name="rs_sage-text-preload", daemon=True)
        text_loader.start()
        import atexit

        atexit.register(text_loader.join)
        try:
            providers = providers or PREFERRED_PROVIDERS
            available = set(ort.get_available_providers())
            from ..setup.deps import nvidia_gpu

            if not nvidia_gpu():  # the GPU build lists CUDA without a GPU; asking for it only costs time
                available -= {"CUDAExecutionProvider", "TensorrtExecutionProvider"}
            providers = [p for p in providers if p in available] or ["CPUExecutionProvider"]
            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads:  # a Dask worker process: one core each, so N workers use N cores
                so.intra_op_num_threads = so.inter_op_num_threads = int(threads)
            chosen = experts_chosen = "float32"
            int8, int8_experts = model_dir / "encoder.int8.onnx", model_dir / "experts.int8.onnx"
            experts_precision = experts_precision or precision
            for value in (precision, experts_precision):
                if value not in ("auto", "float32", "int8"):
                    raise ModelError(f"Unknown precision '{value}': auto, float32 or int8.")
            from .session_cache import cpu_session

            meta = json.loads((model_dir / "model.json").read_text())  # verified above
            sha = meta.get("files_sha256", {})
            cpu = providers[0] == "CPUExecutionProvider"

            def wanted(value: str, gate: str) -> bool:
                return value == "int8" or (value == "auto" and bool(meta.get(gate, {}).get("accepted")))

            if cpu and int8_experts.is_file() and wanted(experts_precision, "int8_experts"):
                paths[1], experts_chosen = int8_experts, "int8"
            verify(model_dir, [paths[1].name])
            experts = cpu_session(paths[1], sha.get(paths[1].name) if cpu else None, so, providers)
            on_cpu = experts.get_providers()[0] == "CPUExecutionProvider"  # the truth, not the available list
            if int8.is_file() and on_cpu and wanted(precision, "int8_encoder"):
                paths[0], chosen = int8, "int8"
            verify(model_dir, [paths[0].name])
            sessions = [cpu_session(paths[0], sha.get(paths[0].name) if cpu else None, so, providers), experts]
            kb = KnowledgeBase.load(kb_dir, user_dir=user_kb)
            expected = _metadata(sessions[1]).get("kb_checksum")
            if expected != kb.checksum:
                raise ModelError(
                    f"The model was trained with knowledge base {str(expected)[:12]} but "
                    f"{kb.checksum[:12]} is installed; reinstall the plugin's resources together."
                )
        except BaseException:
            text_loader.join()
            raise
        eng = cls(sessions[0], sessions[1], kb, shared_encoder(), views)
        eng.model_dir = model_dir  # for Dask workers, which load the same files themselves
        eng.precision = chosen
        eng.experts_precision = experts_chosen
        if user_kb is False:
            eng.user_kb_dir = None
        else:
            from ..setup.paths import user_kb_dir

            eng.user_kb_dir = Path(user_kb) if user_kb else user_kb_dir()
        return eng

    @property
    def device(self) -> str:
        """What the sessions really run on (the available-providers list lies without a GPU)."""
        used = self.encoder.get_providers()
        names = {"CUDAExecutionProvider": "cuda", "DmlExecutionProvider": "directml",
                 "CoreMLExecutionProvider": "coreml"}
        return names.get(used[0], "cpu") if used else "cpu"

    # ---- internals -------------------------------------------------------------------------
    def _preprocess(self, images: list[np.ndarray]) -> np.ndarray:
        from PIL import Image

        s = self.input_size
        arr = np.stack([
            img if img.shape[:2] == (s, s)
            else np.asarray(Image.fromarray(img).resize((s, s), Image.BILINEAR))
            for img in images
        ]).astype(np.float32)
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))

    def encode_images(self, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Tokens [B,V,3,T,d] and queries [B,V,3,d] for the engine's V views of each image."""
        toks, qs = [], []
        for i in range(0, len(images), BATCH):
            x = self._preprocess(images[i:i + BATCH])
            outs = [self.encoder.run(None, {"image": dihedral(x, k)}) for k in VIEW_SETS[self.views]]
            toks.append(np.stack([t for t, _ in outs], 1))
            qs.append(np.stack([q for _, q in outs], 1))
        return np.concatenate(toks), np.concatenate(qs)

    def _retrieve(self, queries: np.ndarray, u: np.ndarray):
        q = queries + self.question_weight * u[:, None, :]
        q /= np.linalg.norm(q, axis=-1, keepdims=True) + 1e-12
        rows, scores = self.kb.search_levels(q.astype(np.float32), self.top_k, tuple(self.kb_levels))
        cues = self.kb.embeddings[np.clip(rows, 0, None)]
        cues[rows < 0] = 0
        scores = np.where(rows < 0, 0, scores).astype(np.float32)
        return rows, scores, cues.astype(np.float32)

    def _run_experts(self, tokens, queries, u):
        """Experts on every view: emb [B,V,d], logits [B,V,A], router [B,V,3]; the cues
        (rows, scores [B,3,k]) are those of the first, unrotated view, which the user sees."""
        b, v = tokens.shape[:2]
        tokens, queries = tokens.reshape(b * v, *tokens.shape[2:]), queries.reshape(b * v, *queries.shape[2:])
        u = np.repeat(u, v, 0)
        rows, scores, cues = self._retrieve(queries, u)
        emb, logits, router = [], [], []
        for i in range(0, len(tokens), BATCH):
            e, lg, r = self.experts.run(None, {
                "tokens": tokens[i:i + BATCH], "cues": cues[i:i + BATCH],
                "cue_scores": scores[i:i + BATCH], "question": u[i:i + BATCH]})
            emb.append(e)
            logits.append(lg)
            router.append(r)
        per_view = [np.concatenate(x).reshape(b, v, -1) for x in (emb, logits, router)]
        return (*per_view, rows.reshape(b, v, *rows.shape[1:])[:, 0],
                scores.reshape(b, v, *scores.shape[1:])[:, 0])

    def _cues(self, rows, scores, n: int = 5) -> dict[str, list[Cue]]:
        return {lv: [Cue(self.kb.entries[r].name, round(float(s), 4))
                     for r, s in zip(rows[j][:n], scores[j][:n], strict=True) if r >= 0]
                for j, lv in enumerate(self.levels)}

    def label_embeddings(self, labels: list[str]) -> np.ndarray:
        key = tuple(labels)
        with self._labels_lock:
            cached = self._label_cache.get(key)
        if cached is None:
            # "sandbeach" is embedded as "sand beach"; the label itself is kept as the user wrote
            # it everywhere it is shown.
            from .text_encoder import label_texts

            cached = self._embed_in_templates(label_texts(self.text, list(labels)))
            with self._labels_lock:
                self._label_cache[key] = cached
        return cached

    def _embed_in_templates(self, texts: list[str]) -> np.ndarray:
        """Unit-length mean of each text's embeddings in the model's templates (``replace``, not
        ``format``: a label may hold braces)."""
        if self.label_templates == ("{}",) or not texts:
            return self.text.encode(texts)
        n = len(self.label_templates)
        emb = self.text.encode([t.replace("{}", x) for x in texts for t in self.label_templates])
        mean = emb.reshape(len(texts), n, -1).mean(1)
        return (mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)).astype(np.float32)

    def phrase_embedding(self, phrase: str) -> np.ndarray:
        """A phrase typed to find similar tiles, embedded as a label is (templates included), so
        that words search the same space as Classify extent's labels."""
        return self.label_embeddings([phrase])[0]

    def _default_question(self) -> np.ndarray:
        if self._default_u is None:
            self._default_u = self.text.encode([self.meta["default_question"]])[0]
        return self._default_u

    @staticmethod
    def check_labels(labels) -> list[str]:
        if isinstance(labels, str) or not isinstance(labels, list | tuple):
            raise RsSageError("labels must be a list of class names")
        if any(not isinstance(lab, str) for lab in labels):
            bad = next(lab for lab in labels if not isinstance(lab, str))
            raise RsSageError(f"Every label must be text; got {type(bad).__name__} {bad!r}.")
        if any("\0" in lab or any(0xD800 <= ord(ch) <= 0xDFFF for ch in lab) for lab in labels):
            raise RsSageError("A label holds a NUL byte or an unpaired surrogate; type plain text.")
        clean = [" ".join(str(lab).split()) for lab in labels]
        if not clean or any(not c for c in clean):
            raise RsSageError("The label list is empty or has an empty name.")
        if len(set(c.lower() for c in clean)) != len(clean):
            raise RsSageError("The label list repeats a name.")
        return clean

    # ---- public API ------------------------------------------------------------------------
    def classify(self, images, labels: list[str] | None = None, top_k: int = 5) -> list[ClassifyResult]:
        import numbers

        from .scene_check import scene_flags

        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise RsSageError(f"top_k must be a whole number of at least 1, not {top_k!r}.")
        images = as_batch(images)
        labels = self.check_labels(labels) if labels is not None else self.default_labels
        tokens, queries = self.encode_images(images)
        return self.classify_encoded(tokens, queries, labels, top_k, not_scene=scene_flags(images, self.input_size))

    def embed(self, images) -> np.ndarray:
        """Scene embeddings (n, d), float32, L2-normalised, view-averaged: the vectors label texts
        are scored against (the scene head of the experts, default question)."""
        images = as_batch(images)
        if not images:
            return np.zeros((0, len(self._default_question())), np.float32)
        tokens, queries = self.encode_images(images)
        return self.embed_encoded(tokens, queries)

    def embed_encoded(self, tokens, queries) -> np.ndarray:
        u = np.repeat(self._default_question()[None], len(tokens), 0)
        return _unit_view_mean(self._run_experts(tokens, queries, u)[0])

    def classify_encoded(self, tokens, queries, labels, top_k=5, not_scene: list[str] | None = None
                         ) -> list[ClassifyResult]:
        """``not_scene``: per tile, why its pixels are not a scene ("" when they may be one)."""
        u = np.repeat(self._default_question()[None], len(tokens), 0)
        emb, _, router, rows, scores = self._run_experts(tokens, queries, u)
        cos = emb @ self.label_embeddings(labels).T  # [B, V, L]
        none = np.full(cos.shape[:2] + (1,), self.match_below, np.float32)
        probs = _softmax(self.logit_scale * np.concatenate([cos, none], -1)).mean(1)[:, :-1]
        match = cos.mean(1)
        router = router.mean(1)
        vec = _unit_view_mean(emb)
        out = []
        for i, p in enumerate(probs):
            order = np.argsort(-p)[: max(1, min(top_k, len(labels)))]
            best = float(match[i, order[0]])
            reason = ""
            if not_scene and not_scene[i]:
                reason = f"not a scene: {not_scene[i]}"
            elif best < self.match_below:
                reason = "no label fits"
            elif relative_score(float(p[order[0]] / max(p.sum(), 1e-12)), len(labels)) < self.uncertain_below:
                reason = "ambiguous"
            out.append(ClassifyResult(
                label=labels[order[0]], score=round(float(p[order[0]]), 4),
                top=[(labels[j], round(float(p[j]), 4)) for j in order],
                cues=self._cues(rows[i], scores[i]),
                router={lv: round(float(router[i, j]), 4) for j, lv in enumerate(self.levels)},
                uncertain=bool(reason), match=round(best, 4), reason=reason, embedding=vec[i]))
        return out

    def ask(self, images, question: str, labels: list[str] | None = None) -> list[AskResult]:
        parsed = parse_question(question)
        tokens, queries = self.encode_images(as_batch(images))
        return self.ask_encoded(tokens, queries, parsed.text, labels)

    def ask_encoded(self, tokens, queries, question: str, labels=None, scenes=None) -> list[AskResult]:
        """``scenes``: the tiles' ClassifyResults for these labels when already known (a cache)."""
        from .vocab import TYPE_ANSWERS

        parsed = parse_question(question)
        labels = self.check_labels(labels) if labels else self.default_labels
        labels = question_labels(parsed, labels)
        if scenes is None:
            scenes = self.classify_encoded(tokens, queries, labels, 3)
        # "Where is X?" is a presence question per tile; shares and comparisons are answered by the
        # scene classification over labels that include the things asked about.
        asked = f"Is there a {parsed.subject}?" if parsed.type == "where" else parsed.text
        u = np.repeat(self.text.encode([asked]), len(tokens), 0)
        _, logits, router, rows, scores = self._run_experts(tokens, queries, u)
        router = router.mean(1)
        out = []
        for i in range(len(tokens)):
            cues = self._cues(rows[i], scores[i])
            scene = scenes[i]
            rtr = {lv: round(float(router[i, j]), 4) for j, lv in enumerate(self.levels)}
            evidence = "; ".join(", ".join(c.name for c in cues[lv][:3]) for lv in ("scene", "object"))
            if parsed.type in ("open", "scene", "share", "comparison"):
                answer, conf = scene.label, scene.score
                alts = scene.top
            else:
                kind = "presence" if parsed.type == "where" else parsed.type
                allowed = [self.answers.index(a) for a in TYPE_ANSWERS[kind]]
                p = _softmax(logits[i][:, allowed]).mean(0)
                order = np.argsort(-p)
                answer, conf = self.answers[allowed[order[0]]], float(p[order[0]])
                alts = [(self.answers[allowed[j]], round(float(p[j]), 4)) for j in order[:3]]
            text = f"{answer[:1].upper()}{answer[1:]} ({conf:.2f}): {scene.label} scene; {evidence}"
            out.append(AskResult(answer=answer, text=text, confidence=round(conf, 4), type=parsed.type,
                                 cues=cues, router=rtr, scene=scene.label, alternatives=alts,
                                 uncertain=bool(scene.uncertain)))
        return out


_shared: ProcessShared[Engine] = ProcessShared(lambda: Engine.load())


def shared_engine() -> Engine:
    """One engine per process for the plugin and the algorithms: loading costs seconds."""
    return _shared.get()


def release_shared_engine() -> None:
    """Drop the shared engine and text encoder (plugin unload): their sessions hold ~150 MB."""
    from .text_encoder import release_shared_encoder

    _shared.release()
    release_shared_encoder()
    from ..imagery.tile_cache import shared_tile_cache

    shared_tile_cache().clear()
