"""Open-vocabulary training: AID and EuroSAT together, the scene embedding aligned with many texts.

``python -m core train --open`` (the shipped model) and ``--open --leave-out aid:Pond,...`` (the
visible open-vocabulary test: those classes' images *and* texts never reach training).

Why this and not ``training.train``: that loop matched each image to one of AID's 30 names (a
30-way softmax over sampled phrasings), so a word was an index. Here every step scores the scene
embedding against the whole text pool (all classes' names, aliases and descriptions from both
data sets) with several positives per image, against caption sentences of the batch, against the
objects mined from the captions and against broad land-cover concepts, so a word the user types
lands near the imagery it describes even when it is not a class name. The question head, the
level alignment to the knowledge base and the captions are trained as before on the AID rows
(EuroSAT has neither captions nor questions).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .dataset import AID_CLASSES
from .eurosat import EUROSAT_CLASSES, EUROSAT_TEXTS
from .open_eval import DEFAULT_LEAVE_OUT  # noqa: F401 (the stand-in set, re-exported for train)
from .training import BROAD_CONCEPTS, DEFAULT_QUESTION, TrainConfig, TrainData, _soft_nce

# One index space: AID classes first, then EuroSAT's, keyed "aid:X" / "eurosat:X".
OPEN_CLASSES = [f"aid:{c}" for c in AID_CLASSES] + [f"eurosat:{c}" for c in EUROSAT_CLASSES]
EUROSAT_BROAD = {
    "water": ["River", "SeaLake"],
    "vegetation": ["Forest", "HerbaceousVegetation", "Pasture", "PermanentCrop", "AnnualCrop"],
    "built-up": ["Industrial", "Residential"],
    "cropland": ["AnnualCrop", "PermanentCrop"],
    "bare": [],
}
# EuroSAT classes and the AID classes that show the same thing on the ground (a cultivated
# field is AID's "farmland" as much as EuroSAT's "annual crop"). With ``cross_set="ignore"`` the
# text pool loss treats the other set's texts of these classes as neither positive nor negative.
# Tried as the cause of model 0.2.0's loss on coarse imagery (scored as negatives, they could
# teach that a blurry field is *not* "farmland"); it was not: the coarse rows did not move in
# 3 epochs (docs/selection_logs/open_coarse_rule.md). Kept as an option, off by default.
EUROSAT_AID_OVERLAP = {
    "AnnualCrop": ["Farmland"],
    "Forest": ["Forest"],
    "HerbaceousVegetation": ["Meadow"],
    "Highway": [],
    "Industrial": ["Industrial"],
    "Pasture": ["Meadow", "Farmland"],
    "PermanentCrop": ["Farmland"],
    "Residential": ["DenseResidential", "MediumResidential", "SparseResidential"],
    "River": ["River"],
    "SeaLake": ["Pond"],
}


def overlap_matrix() -> np.ndarray:
    """[n_classes, n_classes] symmetric: classes of the two data sets that show the same thing."""
    n = len(OPEN_CLASSES)
    m = np.zeros((n, n), bool)
    for eu, aids in EUROSAT_AID_OVERLAP.items():
        e = OPEN_CLASSES.index(f"eurosat:{eu}")
        for a in aids:
            i = OPEN_CLASSES.index(f"aid:{a}")
            m[e, i] = m[i, e] = True
    return m


def class_texts(kb) -> list[list[str]]:
    """Texts of each class in OPEN_CLASSES, the plain name first."""
    from .training import class_phrasings

    return class_phrasings(kb) + [EUROSAT_TEXTS[c] for c in EUROSAT_CLASSES]


def broad_open_targets() -> np.ndarray:
    from .training import broad_targets

    euro = np.zeros((len(EUROSAT_CLASSES), len(BROAD_CONCEPTS)), np.float32)
    for j, key in enumerate(BROAD_CONCEPTS):
        for c in EUROSAT_BROAD[key]:
            euro[EUROSAT_CLASSES.index(c), j] = 1
    return np.concatenate([broad_targets(), euro])


def cross_set_ignore(pool_pos: np.ndarray) -> np.ndarray:
    """[n_classes, n_texts]: the texts of an overlapping class of the other data set that are not
    also the image's own (those stay positives), left out of the text-pool loss."""
    return (overlap_matrix().astype(np.float32) @ pool_pos > 0) & (pool_pos == 0)


class OpenData:
    """AID (TrainData: questions, captions, objects) plus EuroSAT features and the text pool."""

    def __init__(self, cache: Path, kb, leave_out: tuple[str, ...] = ()):
        from core.model.text_encoder import shared_encoder

        unknown = set(leave_out) - set(OPEN_CLASSES)
        if unknown:
            raise ValueError(f"unknown classes to leave out: {sorted(unknown)}")
        self.aid = TrainData(cache, kb)
        self.held = np.array([c in leave_out for c in OPEN_CLASSES])
        self.euro = {}
        for split in ("train", "val", "test"):
            rows = json.loads((cache / f"eurosat_{split}.json").read_text())
            self.euro[split] = {"feats": np.load(cache / f"eurosat_{split}.npy", mmap_mode="r"),
                                "labels": np.array([len(AID_CLASSES) + EUROSAT_CLASSES.index(c) for _, c in rows]),
                                "images": [im for im, _ in rows]}
        enc = shared_encoder()
        texts = class_texts(kb)
        self.name_emb = enc.encode([t[0] for t in texts])  # [40, d] plain names, for evaluation
        self.class_emb = [enc.encode(t) for t in texts]  # per class, every wording (one drawn per step)
        # The pool: every text of every class that is not left out; a text shared by two classes
        # ("forest") is a positive of both.
        pool = sorted({t for c, ts in enumerate(texts) if not self.held[c] for t in ts})
        self.pool_emb = enc.encode(pool)
        self.pool_pos = np.zeros((len(OPEN_CLASSES), len(pool)), np.float32)
        index = {t: i for i, t in enumerate(pool)}
        for c, ts in enumerate(texts):
            if not self.held[c]:
                for t in ts:
                    self.pool_pos[c, index[t]] = 1
        self.pool_ignore = cross_set_ignore(self.pool_pos)
        self.broad_t = broad_open_targets()
        self.default_u = enc.encode([DEFAULT_QUESTION])[0]


def _train_order(data: OpenData, rng, per_epoch: int) -> list[tuple[int, int]]:
    """(source, index) pairs of one epoch: every AID training image of a kept class and
    ``per_epoch`` EuroSAT training images of kept classes, shuffled together."""
    aid_keep = np.flatnonzero(~data.held[data.aid.split["train"]["labels"]])
    eu_keep = np.flatnonzero(~data.held[data.euro["train"]["labels"]])
    eu = rng.choice(eu_keep, size=min(per_epoch, len(eu_keep)), replace=False)
    pairs = [(0, int(i)) for i in aid_keep] + [(1, int(i)) for i in eu]
    return [pairs[i] for i in rng.permutation(len(pairs))]


def open_scene_embeddings(model, x, u, kb_emb):
    from .model import retrieve_torch

    tokens, queries = model.encoder.from_stem(x)
    cues, scores = retrieve_torch(kb_emb, queries, u, model.cfg.top_k, model.cfg.question_weight)
    emb, logits, _ = model.experts(tokens, cues, scores, u)
    return emb, logits, tokens, queries


def evaluate_open(model, data: OpenData, split: str, kb_emb, limit: int | None = None) -> dict:
    """Per-class accuracy with each data set's own plain names (30 AID, 10 EuroSAT), one clean view."""
    import torch

    out: dict[str, list[int]] = {}
    model.eval()
    names = torch.from_numpy(data.name_emb)
    sets = (("aid", data.aid.split[split]["feats"], data.aid.split[split]["labels"], slice(0, len(AID_CLASSES))),
            ("eurosat", data.euro[split]["feats"], data.euro[split]["labels"],
             slice(len(AID_CLASSES), len(OPEN_CLASSES))))
    with torch.inference_mode():
        for _, feats, labels, cls in sets:
            n = len(labels) if limit is None else min(limit, len(labels))
            for i in range(0, n, 128):
                x = torch.from_numpy(np.asarray(feats[0, i:min(i + 128, n)], dtype=np.float32))
                u = torch.from_numpy(np.repeat(data.default_u[None], len(x), 0))
                emb, *_ = open_scene_embeddings(model, x, u, kb_emb)
                pred = (emb @ names[cls].T).argmax(1).numpy() + cls.start
                for y, p in zip(labels[i:i + len(x)], pred, strict=True):
                    out.setdefault(OPEN_CLASSES[y], []).append(int(p == y))
    per_class = {c: float(np.mean(v)) for c, v in out.items()}
    res = {"per_class": per_class}
    for ds in ("aid", "eurosat"):
        seen = [v for c, v in out.items() if c.startswith(ds) and not data.held[OPEN_CLASSES.index(c)]]
        unseen = [v for c, v in out.items() if c.startswith(ds) and data.held[OPEN_CLASSES.index(c)]]
        res[f"{ds}_seen"] = float(np.mean(np.concatenate(seen))) if seen else None
        res[f"{ds}_unseen"] = float(np.mean(np.concatenate(unseen))) if unseen else None
        res[f"{ds}_all"] = float(np.mean(np.concatenate(seen + unseen)))
    return res


def train_open(tc: TrainConfig) -> Path:
    import os

    import torch

    from core.model.knowledge import KnowledgeBase

    from .dataset import AID_LABEL_TEXT
    from .eurosat import prepare_eurosat
    from .model import KB_LEVELS, RsSageModel
    from .training import _optimiser, _resume, _save_epoch, check_cache, variant_config

    torch.set_num_threads(int(os.environ.get("RS_SAGE_TRAIN_THREADS", "2")))  # 1: beside another run
    cache = Path(tc.cache)
    if not (cache / "stem_train.npy").is_file():
        from .prepare import prepare

        prepare(cache, backbone=tc.backbone, size=tc.input_size, frozen_blocks=tc.frozen_blocks)
    check_cache(cache, tc, tc.backbone)
    if not (cache / "eurosat_train.npy").is_file():
        prepare_eurosat(cache, size=tc.input_size)
    out = Path(tc.out)
    out.mkdir(parents=True, exist_ok=True)
    kb = KnowledgeBase.load(user_dir=False)
    kb_emb = [torch.from_numpy(kb.embeddings[kb.level_rows[lv]]) for lv in KB_LEVELS]
    data = OpenData(cache, kb, tuple(tc.leave_out))
    cfg = variant_config(tc.variant, len(data.aid.answers), tc.input_size, tc.frozen_blocks, tc.backbone)
    torch.manual_seed(tc.seed)
    model = RsSageModel(cfg)
    if tc.init_from:  # a fine-tune of an open model (same classes, texts and answers)
        from .training import load_init

        load_init(model, cfg, data.aid.answers, tc.init_from)
    backbone = list(model.encoder.top.parameters())
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    n_aid = int((~data.held[data.aid.split["train"]["labels"]]).sum())
    steps_per_epoch = (n_aid + tc.eurosat_per_epoch) // tc.batch_size
    if tc.max_steps:
        steps_per_epoch = min(steps_per_epoch, tc.max_steps)
    opt, sched = _optimiser(tc, backbone, rest, steps_per_epoch)
    ckpt_path = out / "checkpoint.pt"
    start_epoch = _resume(ckpt_path, model, opt, sched)

    tr, eu = data.aid.split["train"], data.euro["train"]
    if not 0 <= tc.coarse_share <= 1:
        raise ValueError(f"coarse_share must be within 0..1, not {tc.coarse_share}")
    coarse = None
    if tc.coarse_share > 0:
        from .coarse_views import prepare_coarse

        coarse = np.load(prepare_coarse(cache, size=tc.input_size), mmap_mode="r")
        if coarse.shape[1] != len(tr["images"]):
            from core.errors import RsSageError

            raise RsSageError(f"{cache}/stem_train_coarse.npy holds {coarse.shape[1]} images, the training "
                              f"split {len(tr['images'])}; delete it and it is made again.")
    obj_t, att_t = torch.from_numpy(tr["obj"]), torch.from_numpy(tr["att"])
    kb_obj, kb_att, kb_scene = kb_emb[1], kb_emb[0], kb_emb[2]
    scene_rows = {e.name: i for i, e in enumerate(kb.rows_of("scene"))}
    class_scene = torch.tensor([scene_rows[AID_LABEL_TEXT[c]] for c in AID_CLASSES])
    pool_emb, pool_pos = torch.from_numpy(data.pool_emb), torch.from_numpy(data.pool_pos)
    if tc.cross_set not in ("negative", "ignore"):
        raise ValueError(f"cross_set must be 'negative' or 'ignore', not {tc.cross_set!r}")
    pool_ignore = torch.from_numpy(data.pool_ignore) if tc.cross_set == "ignore" else None
    broad_t = torch.from_numpy(data.broad_t)
    default_u = torch.from_numpy(data.default_u)
    n_aid_cls = len(AID_CLASSES)
    same_set = np.zeros((len(OPEN_CLASSES), len(OPEN_CLASSES)), bool)
    same_set[:n_aid_cls, :n_aid_cls] = True
    same_set[n_aid_cls:, n_aid_cls:] = True
    allowed = torch.from_numpy(same_set & ~data.held[None, :])  # [true class, candidate class]
    ce = torch.nn.functional.cross_entropy
    a_scale = 20.0
    for epoch in range(start_epoch, tc.epochs):
        rng = np.random.default_rng(tc.seed * 1000 + epoch)
        order = _train_order(data, rng, tc.eurosat_per_epoch)
        views_aid = rng.integers(0, tr["feats"].shape[0], len(tr["images"]))
        views_eu = rng.integers(0, eu["feats"].shape[0], len(eu["images"]))
        use_coarse, views_coarse = np.zeros(len(tr["images"]), bool), None
        if coarse is not None:  # drawn only then, so a run without them keeps 0.2.0's random stream
            use_coarse = rng.random(len(tr["images"])) < tc.coarse_share
            views_coarse = rng.integers(0, coarse.shape[0], len(tr["images"]))
        model.train()
        model.encoder.stem.eval()
        t0, losses = time.time(), []
        for step in range(steps_per_epoch):
            batch = order[step * tc.batch_size:(step + 1) * tc.batch_size]
            # int64 even when empty (a batch of one data set only), so they still index arrays
            a_idx = np.sort(np.array([i for s, i in batch if s == 0], dtype=np.int64))
            e_idx = np.sort(np.array([i for s, i in batch if s == 1], dtype=np.int64))
            xs = [np.stack([coarse[views_coarse[i], i] if use_coarse[i] else tr["feats"][views_aid[i], i]
                            for i in a_idx])] if len(a_idx) else []
            if len(e_idx):
                xs.append(np.stack([eu["feats"][views_eu[i], i] for i in e_idx]))
            x = torch.from_numpy(np.concatenate(xs).astype(np.float32))
            na = len(a_idx)
            labels = torch.from_numpy(np.concatenate([tr["labels"][a_idx], eu["labels"][e_idx]]).astype(np.int64))
            qa = [tr["qa"][i][rng.integers(len(tr["qa"][i]))] for i in a_idx]
            q_rows = data.aid.question_emb[[q for q, _, _ in qa]].reshape(na, len(data.default_u))
            u = torch.cat([torch.from_numpy(q_rows), default_u[None].repeat(len(e_idx), 1)])
            emb, logits, tokens, queries = open_scene_embeddings(model, x, u, kb_emb)
            scale = model.experts.logit_scale.exp().clamp(max=100)
            text_logits = scale * emb @ pool_emb.T
            if pool_ignore is not None:
                text_logits = text_logits.masked_fill(pool_ignore[labels], -1e4)
            loss_text = _soft_nce(text_logits, pool_pos[labels])
            loss_broad = _soft_nce(scale * emb @ pool_broad(data, rng).T, broad_t[labels])
            # Each image against one drawn wording of every kept class of its own data set: the
            # ranking the user's label list needs (the pool alone spreads mass over all wordings).
            drawn = torch.from_numpy(np.stack([p[rng.integers(len(p))] for p in data.class_emb]))
            loss_cls = ce((scale * emb @ drawn.T).masked_fill(~allowed[labels], -1e4), labels)
            w = tc.loss_weights
            loss = loss_text + w["cls"] * loss_cls + w["broad"] * loss_broad
            parts = [loss_text.item(), loss_broad.item()]
            if na:
                ans = torch.tensor([a for _, a, _ in qa])
                loss_ans = ce(logits[:na], ans)
                la = labels[:na]
                qa_ = queries[:na]
                loss_align = (ce(a_scale * qa_[:, 2] @ kb_scene.T, class_scene[la])
                              + _soft_nce(a_scale * qa_[:, 1] @ kb_obj.T, obj_t[a_idx])
                              + _soft_nce(a_scale * qa_[:, 0] @ kb_att.T, att_t[a_idx]))
                cap = torch.from_numpy(data.aid.caption_emb[tr["caps"][a_idx, rng.integers(0, 5, na)]])
                target = torch.arange(na)
                loss_cap = sum(ce(a_scale * qa_[:, lv] @ cap.T, target) for lv in range(3)) / 3
                loss_scene_cap = ce(a_scale * emb[:na] @ cap.T, target)
                # The objects the captions name, as directions of the scene embedding too.
                loss_words = _soft_nce(scale * emb[:na] @ kb_obj.T, obj_t[a_idx])
                loss = (loss + loss_ans + 0.3 * loss_align + 0.3 * loss_cap + w["scene_cap"] * loss_scene_cap
                        + w["words"] * loss_words)
                parts += [loss_ans.item(), loss_align.item(), loss_cap.item(), loss_scene_cap.item(),
                          loss_words.item()]
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append([loss.item(), *parts] if len(parts) == 7 else [loss.item(), *parts, *[np.nan] * 5])
            if step % 40 == 0:
                print(f"epoch {epoch} step {step}/{steps_per_epoch} loss "
                      f"{np.nanmean(losses[-40:], 0).round(3).tolist()} "
                      f"{(step + 1) * tc.batch_size / (time.time() - t0):.0f} img/s", flush=True)
        val = evaluate_open(model, data, "val", kb_emb)
        rec = {"epoch": epoch, "loss": np.nanmean(losses, 0).round(4).tolist(),
               **{k: v for k, v in val.items() if k != "per_class"}, "seconds": round(time.time() - t0, 1)}
        _save_epoch(ckpt_path, model, opt, sched, epoch, rec, out / "log.jsonl",
                    config=cfg.to_dict(), train=asdict(tc))
    final = out / "model.pt"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "answers": data.aid.answers,
                "train": asdict(tc), "kb_checksum": kb.checksum, "open_classes": OPEN_CLASSES,
                "leave_out": list(tc.leave_out)}, final)
    return final


def pool_broad(data: OpenData, rng):
    """One wording of each broad concept, drawn per step."""
    import torch

    return torch.from_numpy(np.stack([p[rng.integers(len(p))] for p in data.aid.broad_emb]))
