"""``python -m core train``: train RS-SAGE on cached stem features of AID (RSICD train part).

Checkpoints after every epoch and resumes from the last one; fixed seed; one JSON line of loss
and validation accuracy per epoch in ``<out>/log.jsonl``. Run ``rs_sage_dev.prepare`` first (the
command does it when the cache is missing).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

CACHE = Path(".cache/train")
DEFAULT_QUESTION = "What type of scene is this?"


@dataclass
class TrainConfig:
    out: str = ".checkpoints/full"
    epochs: int = 10
    batch_size: int = 64
    lr: float = 1e-3
    backbone_lr: float = 4e-4
    weight_decay: float = 0.02
    seed: int = 0
    variant: str = "full"
    cache: str = str(CACHE)
    input_size: int = 160
    backbone: str = "efficientnet-lite0"
    frozen_blocks: int | None = None  # backbone blocks kept frozen (None: through stage 3)
    max_steps: int | None = None  # steps per epoch cap, for smoke runs only
    init_from: str | None = None  # model.pt to start from (a fine-tune), instead of the pretrained backbone alone
    lr_scale: float = 1.0  # multiplies both learning rates (a fine-tune wants a small one)
    distill_from: str | None = None  # model.pt: its view-averaged class probabilities are soft targets
    distill_weight: float = 1.0
    distill_views: int = 4  # cached augmented views averaged for the teacher's targets
    open_vocab: bool = False  # AID + EuroSAT against the text pool (open_vocab.train_open)
    leave_out: tuple[str, ...] = ()  # "aid:Pond", "eurosat:Highway": images and texts never trained on
    # --open: the other data set's texts of overlapping classes in the text-pool loss: "negative"
    # (model 0.2.0) or "ignore" (open_vocab.EUROSAT_AID_OVERLAP)
    cross_set: str = "negative"
    # --open: share of AID training images shown as one of their coarse views (coarse_views.py)
    coarse_share: float = 0.0
    eurosat_per_epoch: int = 7000  # EuroSAT training images drawn per epoch (all AID ones are used)
    # --open loss weights (the shipped 0.2.0 recipe: cls 1, words 0.2, scene_cap 0.3, broad 0.3)
    loss_weights: dict = field(default_factory=lambda: {"cls": 1.0, "words": 0.2, "scene_cap": 0.3,
                                                        "broad": 0.3})

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> TrainConfig:
        backbone = getattr(args, "backbone", None) or "efficientnet-lite0"
        cfg = cls(out=args.out, seed=args.seed, variant=args.variant, input_size=args.input_size,
                  frozen_blocks=args.frozen_blocks, backbone=backbone,
                  cache=args.cache or default_cache(args.input_size, args.frozen_blocks, backbone))
        if args.epochs:
            cfg.epochs = args.epochs
        cfg.init_from = getattr(args, "init_from", None)
        cfg.lr_scale = getattr(args, "lr_scale", 1.0)
        cfg.distill_from = getattr(args, "distill_from", None)
        cfg.open_vocab = bool(getattr(args, "open", False))
        leave = getattr(args, "leave_out", "") or ""
        if leave == "default":
            from .open_vocab import DEFAULT_LEAVE_OUT

            cfg.leave_out = DEFAULT_LEAVE_OUT
        else:
            cfg.leave_out = tuple(x for x in leave.split(",") if x)
        cfg.max_steps = getattr(args, "max_steps", None)
        cfg.cross_set = getattr(args, "cross_set", None) or cfg.cross_set
        if getattr(args, "coarse_share", None) is not None:
            cfg.coarse_share = args.coarse_share
        if getattr(args, "eurosat_per_epoch", None):
            cfg.eurosat_per_epoch = args.eurosat_per_epoch
        for item in (getattr(args, "loss_weights", None) or "").split(","):
            if item:
                key, _, value = item.partition("=")
                if key not in cfg.loss_weights:
                    raise SystemExit(f"--loss-weights: unknown '{key}' (known: {', '.join(cfg.loss_weights)})")
                cfg.loss_weights[key] = float(value)
        return cfg


def default_cache(input_size: int = 160, frozen_blocks: int | None = None,
                  backbone: str = "efficientnet-lite0") -> str:
    """.cache/train for the first model's settings, a suffixed sibling for any other."""
    name = str(CACHE) if input_size == 160 else f"{CACHE}{input_size}"
    if backbone != "efficientnet-lite0":
        name += "_" + backbone.removeprefix("efficientnet-")
    return name if frozen_blocks is None else f"{name}_frozen{frozen_blocks}"


def check_cache(cache: Path, tc: TrainConfig, backbone: str) -> None:
    """Stem features made with another cut or size would train silently wrong; refuse them."""
    from core.errors import RsSageError

    from .prepare import stem_settings

    meta, old = cache / "stem.json", cache / "input_size.txt"  # old: caches made before stem.json
    if meta.is_file():
        found = json.loads(meta.read_text())
    else:
        found = stem_settings(backbone, int(old.read_text()) if old.is_file() else 160, None)
    wanted = stem_settings(backbone, tc.input_size, tc.frozen_blocks)
    if found != wanted:
        raise RsSageError(f"{cache} holds stem features for {found}, this run needs {wanted}; "
                          "pass another --cache folder.")


def variant_config(variant: str, n_answers: int, input_size: int = 160, frozen_blocks: int | None = None,
                   backbone: str = "efficientnet-lite0"):
    from .model import ModelConfig

    cfg = ModelConfig(backbone=backbone, n_answers=n_answers, input_size=input_size, frozen_blocks=frozen_blocks)
    if variant == "no_retrieval":
        cfg.retrieval = False
    elif variant == "shared_expert":
        cfg.per_level_experts = False
    elif variant == "scene_only":
        cfg.levels = ("scene",)
    elif variant.startswith("topk"):
        cfg.top_k = int(variant[4:])
    elif variant != "full":
        raise ValueError(f"unknown variant {variant}")
    return cfg


def class_phrasings(kb) -> list[list[str]]:
    """Label texts per AID class: the plain name, the merged benchmark aliases of its
    knowledge-base scene entry and its one-sentence description, so the scene head learns a
    region of text space, not a point."""
    from .dataset import AID_CLASSES, AID_LABEL_TEXT

    by_name = {e.name: e for e in kb.rows_of("scene")}
    out = []
    for c in AID_CLASSES:
        name = AID_LABEL_TEXT[c]
        entry = by_name.get(name)
        out.append([name, *(entry.aliases if entry else []), *([entry.text] if entry else [])])
    return out


# Broad land-cover concepts, derived from the classes, each in a few wordings: the scene
# embedding is also pulled towards the concepts its class belongs to, so that a user's "water"
# or "built-up area" lands on rivers, ponds and ports, towns and factories.
BROAD_CONCEPTS: dict[str, tuple[list[str], list[str]]] = {
    "water": (["water", "water body", "open water", "surface water"],
              ["River", "Pond", "Port", "Beach"]),
    "vegetation": (["vegetation", "green vegetation", "plants and trees"],
                   ["Forest", "Meadow", "Park", "Farmland", "Resort"]),
    "built-up": (["built-up area", "buildings", "urban area", "settlement", "city"],
                 ["Center", "Church", "Commercial", "DenseResidential", "Industrial",
                  "MediumResidential", "RailwayStation", "School", "Square", "SparseResidential",
                  "Stadium", "StorageTanks", "Parking", "Airport", "Port", "Viaduct", "Resort",
                  "Playground", "BaseballField"]),
    "cropland": (["cropland", "agricultural fields", "crops"], ["Farmland"]),
    "bare": (["bare ground", "bare soil", "barren land"], ["BareLand", "Desert", "Mountain"]),
}


def broad_targets() -> np.ndarray:
    """[n_classes, n_concepts] multi-hot membership of each AID class in the broad concepts."""
    from .dataset import AID_CLASSES

    t = np.zeros((len(AID_CLASSES), len(BROAD_CONCEPTS)), np.float32)
    for j, (_, classes) in enumerate(BROAD_CONCEPTS.values()):
        for c in classes:
            t[AID_CLASSES.index(c), j] = 1
    return t


class TrainData:
    """Everything a step needs, as arrays indexed by image position in the cache."""

    def __init__(self, cache: Path, kb):
        from core.model.text_encoder import shared_encoder

        from .dataset import load_samples
        from .questions import ANSWERS, generate, mentions
        from .textproc import tokens

        samples = {s.image: s for s in load_samples()}
        items = generate(list(samples.values()))
        q_index = {q: i for i, q in enumerate(json.loads((cache / "questions.json").read_text()))}
        self.question_emb = np.load(cache / "question_emb.npy")
        c_index = {c: i for i, c in enumerate(json.loads((cache / "captions.json").read_text()))}
        self.caption_emb = np.load(cache / "caption_emb.npy")
        self.answers = ANSWERS
        self.items = items
        obj_rows = {e.name: i for i, e in enumerate(kb.rows_of("object"))}
        att_rows = {e.name: i for i, e in enumerate(kb.rows_of("attribute"))}
        self.n_obj, self.n_att = len(obj_rows), len(att_rows)
        self.split = {}
        for split in ("train", "val", "test"):
            images = json.loads((cache / f"stem_{split}.json").read_text())
            feats = np.load(cache / f"stem_{split}.npy", mmap_mode="r")
            by_img: dict[str, list] = {im: [] for im in images}
            for it in items:
                if it.image in by_img:
                    by_img[it.image].append((q_index[it.question], ANSWERS.index(it.answer), it.type))
            obj_t = np.zeros((len(images), self.n_obj), np.float32)
            att_t = np.zeros((len(images), self.n_att), np.float32)
            caps = np.zeros((len(images), 5), np.int64)
            for i, im in enumerate(images):
                s = samples[im]
                for o in mentions(s):
                    if o in obj_rows:
                        obj_t[i, obj_rows[o]] = 1
                text = " " + " ".join(" ".join(tokens(c)) for c in s.captions) + " "
                for a, j in att_rows.items():
                    if f" {a.lower()} " in text:
                        att_t[i, j] = 1
                caps[i] = [c_index[c] for c in s.captions]
            self.split[split] = {
                "images": images, "feats": feats,
                "labels": np.array([samples[im].label_index for im in images]),
                "qa": [by_img[im] for im in images], "obj": obj_t, "att": att_t, "caps": caps,
            }
        phr = class_phrasings(kb)
        enc = shared_encoder()
        self.class_phr_emb = [enc.encode(p) for p in phr]
        self.broad_emb = [enc.encode(words) for words, _ in BROAD_CONCEPTS.values()]
        self.broad_targets = broad_targets()
        self.default_u = enc.encode([DEFAULT_QUESTION])[0]

    def class_name_emb(self):
        """[n_classes, d] torch embeddings of each class's first phrasing (its AID name): what
        evaluation and distillation score against (training samples a phrasing per step)."""
        import torch

        return torch.from_numpy(np.stack([p[0] for p in self.class_phr_emb]))


def scene_embeddings(model, data: TrainData, x, kb_emb):
    """(scene embeddings, tokens, queries) of stem features ``x`` with the default question: what
    the class scores of the teacher and of the evaluation are taken from."""
    import torch

    from .model import retrieve_torch

    tokens, queries = model.encoder.from_stem(x)
    u = torch.from_numpy(np.repeat(data.default_u[None], len(x), 0))
    cues, scores = retrieve_torch(kb_emb, queries, u, model.cfg.top_k, model.cfg.question_weight)
    emb, _, _ = model.experts(tokens, cues, scores, u)
    return emb, tokens, queries


def teacher_targets(tc: TrainConfig, cfg, data: TrainData, kb_emb, out: Path):
    """[n_train, n_classes] class probabilities of the ``distill_from`` model averaged over the
    first ``distill_views`` cached augmented views of each training image (written once to
    ``out/teacher.npy``, so a resumed run reuses them). A single view is trained to match what
    the ensemble of views says: the view averaging the engine pays 4x for at inference, moved
    into the weights."""
    import torch

    from .model import RsSageModel

    path = out / "teacher.npy"
    if path.is_file():
        return np.load(path)
    teacher = RsSageModel(cfg, pretrained=False)
    teacher.load_state_dict(torch.load(tc.distill_from, weights_only=True)["model"])
    teacher.eval()
    feats = data.split["train"]["feats"]
    names = data.class_name_emb()
    n = feats.shape[1]
    probs = np.zeros((n, len(names)), np.float32)
    t0 = time.time()
    with torch.inference_mode():
        scale = teacher.experts.logit_scale.exp().clamp(max=100)
        for v in range(min(tc.distill_views, feats.shape[0])):
            for i in range(0, n, 256):
                x = torch.from_numpy(np.asarray(feats[v, i:i + 256], dtype=np.float32))
                emb, _, _ = scene_embeddings(teacher, data, x, kb_emb)
                probs[i:i + len(x)] += (scale * emb @ names.T).softmax(-1).numpy()
            print(f"teacher view {v + 1}: {time.time() - t0:.0f} s", flush=True)
    probs /= min(tc.distill_views, feats.shape[0])
    np.save(path, probs)
    return probs


def _optimiser(tc: TrainConfig, backbone: list, rest: list, steps_per_epoch: int):
    """AdamW with two learning rates and a one-cycle schedule over the whole budget."""
    import torch

    lrs = [tc.backbone_lr * tc.lr_scale, tc.lr * tc.lr_scale]
    opt = torch.optim.AdamW([{"params": backbone, "lr": lrs[0]}, {"params": rest, "lr": lrs[1]}],
                            weight_decay=tc.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lrs,
                                                total_steps=steps_per_epoch * tc.epochs, pct_start=0.08)
    return opt, sched


def _resume(path: Path, model, opt, sched) -> int:
    """Load the last epoch checkpoint when there is one; the epoch to start from."""
    import torch

    if not path.is_file():
        return 0
    ck = torch.load(path, weights_only=True)
    if ck["sched"].get("total_steps") != sched.total_steps:
        from core.errors import RsSageError

        raise RsSageError(
            f"{path} was written by a run with a different schedule ({ck['sched'].get('total_steps')} steps, "
            f"now {sched.total_steps}); resume with the same --epochs or train into a new --out folder.")
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["opt"])
    sched.load_state_dict(ck["sched"])
    print(f"resumed after epoch {ck['epoch'] + 1}", flush=True)
    return ck["epoch"] + 1


def _save_epoch(path: Path, model, opt, sched, epoch: int, rec: dict, log: Path, **extra) -> None:
    """Log line plus an atomic checkpoint (a crash mid-write never corrupts the last one)."""
    import torch

    print(json.dumps(rec), flush=True)
    with open(log, "a") as f:
        f.write(json.dumps(rec) + "\n")
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(),
                "epoch": epoch, **extra}, str(path) + ".tmp")
    Path(str(path) + ".tmp").replace(path)


def _epoch_order(tc: TrainConfig, epoch: int, n: int, n_views: int):
    rng = np.random.default_rng(tc.seed * 1000 + epoch)
    return rng, rng.permutation(n), rng.integers(0, n_views, n)


def _steps(tc: TrainConfig, n: int) -> int:
    steps = n // tc.batch_size
    return min(steps, tc.max_steps) if tc.max_steps else steps


def _soft_nce(logits, target):
    """Multi-positive contrastive loss; rows without a positive are skipped."""
    import torch

    has = target.sum(1) > 0
    if not has.any():
        return logits.sum() * 0
    t = target[has] / target[has].sum(1, keepdim=True)
    return -(t * torch.log_softmax(logits[has], -1)).sum(1).mean()


def evaluate_split(model, data: TrainData, split: str, kb_emb, limit: int | None = None) -> dict:
    import torch

    from .model import retrieve_torch
    from .questions import TYPE_ANSWERS

    d = data.split[split]
    n = len(d["images"]) if limit is None else min(limit, len(d["images"]))
    cfg = model.cfg
    label_emb = data.class_name_emb()
    type_masks = {t: torch.tensor([a in set(v) for a in data.answers]) for t, v in TYPE_ANSWERS.items()}
    correct, total = 0, 0
    vqa: dict[str, list[int]] = {}
    model.eval()
    with torch.inference_mode():
        for i in range(0, n, 128):
            x = torch.from_numpy(np.asarray(d["feats"][0, i:i + 128], dtype=np.float32))
            emb, tokens, queries = scene_embeddings(model, data, x, kb_emb)
            pred = (emb @ label_emb.T).argmax(1).numpy()
            correct += int((pred == d["labels"][i:i + 128]).sum())
            total += len(x)
            # every generated question of these images
            rows = [(j, q, a, t) for j in range(len(x)) for (q, a, t) in d["qa"][i + j]]
            if not rows:
                continue
            idx = torch.tensor([r[0] for r in rows])
            uq = torch.from_numpy(data.question_emb[[r[1] for r in rows]])
            cues, scores = retrieve_torch(kb_emb, queries[idx], uq, cfg.top_k, cfg.question_weight)
            _, logits, _ = model.experts(tokens[idx], cues, scores, uq)
            for r, lg in zip(rows, logits, strict=True):
                masked = lg.masked_fill(~type_masks[r[3]], -1e9)
                vqa.setdefault(r[3], []).append(int(int(masked.argmax()) == r[2]))
    per_type = {t: float(np.mean(v)) for t, v in vqa.items()}
    return {"acc": correct / max(total, 1), "vqa": per_type,
            "vqa_avg": float(np.mean(list(per_type.values()))) if per_type else 0.0, "n": total}


def train_baseline(tc: TrainConfig, data: TrainData, out: Path) -> Path:
    """Ablation (e): the plain classifier on the same cached views, seed, epochs and schedule."""
    import torch

    from .dataset import AID_CLASSES
    from .model import BaselineClassifier, ModelConfig

    torch.manual_seed(tc.seed)
    model = BaselineClassifier(ModelConfig(input_size=tc.input_size, frozen_blocks=tc.frozen_blocks),
                               len(AID_CLASSES))
    tr = data.split["train"]
    n = len(tr["images"])
    steps = _steps(tc, n)
    opt, sched = _optimiser(tc, list(model.top.parameters()), list(model.head.parameters()), steps)
    ckpt_path = out / "checkpoint.pt"
    start = _resume(ckpt_path, model, opt, sched)
    labels_all = torch.from_numpy(tr["labels"])
    for epoch in range(start, tc.epochs):
        rng, order, views = _epoch_order(tc, epoch, n, tr["feats"].shape[0])
        model.train()
        model.stem.eval()
        t0, losses = time.time(), []
        for step in range(steps):
            idx = np.sort(order[step * tc.batch_size:(step + 1) * tc.batch_size])
            x = torch.from_numpy(np.stack([tr["feats"][views[i], i] for i in idx]).astype(np.float32))
            loss = torch.nn.functional.cross_entropy(model.from_stem(x), labels_all[idx], label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss))
        rec = {"epoch": epoch, "loss": round(float(np.mean(losses)), 4),
               "val_acc": baseline_accuracy(model, data, "val"), "seconds": round(time.time() - t0, 1)}
        _save_epoch(ckpt_path, model, opt, sched, epoch, rec, out / "log.jsonl")
    final = out / "model.pt"
    torch.save({"model": model.state_dict(), "variant": "baseline", "train": asdict(tc)}, final)
    return final


def baseline_accuracy(model, data: TrainData, split: str) -> float:
    import torch

    d = data.split[split]
    model.eval()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(d["images"]), 128):
            x = torch.from_numpy(np.asarray(d["feats"][0, i:i + 128], dtype=np.float32))
            correct += int((model.from_stem(x).argmax(1).numpy() == d["labels"][i:i + 128]).sum())
    return correct / len(d["images"])


def load_init(model, cfg, answers, path: str) -> None:
    """Start a fine-tune from ``path``'s weights; refuse a checkpoint of another network."""
    import torch

    start = torch.load(path, weights_only=True)
    if start["config"] != json.loads(json.dumps(cfg.to_dict())) or list(start["answers"]) != list(answers):
        from core.errors import RsSageError

        raise RsSageError(f"{path} was trained with another model config or answer list.")
    model.load_state_dict(start["model"])


def train(tc: TrainConfig) -> Path:
    import torch

    from core.model.knowledge import KnowledgeBase

    from .model import KB_LEVELS, RsSageModel, retrieve_torch

    torch.set_num_threads(2)
    cache = Path(tc.cache)
    if not (cache / "stem_train.npy").is_file():
        from .prepare import prepare

        prepare(cache, backbone=tc.backbone, size=tc.input_size, frozen_blocks=tc.frozen_blocks)
    check_cache(cache, tc, tc.backbone)
    out = Path(tc.out)
    out.mkdir(parents=True, exist_ok=True)
    kb = KnowledgeBase.load(user_dir=False)
    kb_emb = [torch.from_numpy(kb.embeddings[kb.level_rows[lv]]) for lv in KB_LEVELS]
    data = TrainData(cache, kb)
    if tc.variant == "baseline":
        return train_baseline(tc, data, out)
    cfg = variant_config(tc.variant, len(data.answers), tc.input_size, tc.frozen_blocks, tc.backbone)
    torch.manual_seed(tc.seed)
    model = RsSageModel(cfg)
    if tc.init_from:
        load_init(model, cfg, data.answers, tc.init_from)
    backbone = [p for p in model.encoder.top.parameters()]
    ids = {id(p) for p in backbone}
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in ids]
    tr = data.split["train"]
    n = len(tr["images"])
    steps_per_epoch = _steps(tc, n)
    opt, sched = _optimiser(tc, backbone, rest, steps_per_epoch)
    ckpt_path = out / "checkpoint.pt"
    start_epoch = _resume(ckpt_path, model, opt, sched)
    obj_t, att_t = torch.from_numpy(tr["obj"]), torch.from_numpy(tr["att"])
    kb_obj, kb_att, kb_scene = kb_emb[1], kb_emb[0], kb_emb[2]
    from .dataset import AID_CLASSES, AID_LABEL_TEXT
    scene_rows = {e.name: i for i, e in enumerate(kb.rows_of("scene"))}
    class_scene = torch.tensor([scene_rows[AID_LABEL_TEXT[c]] for c in AID_CLASSES])
    labels_all = torch.from_numpy(tr["labels"])
    broad_t = torch.from_numpy(data.broad_targets)
    soft = torch.from_numpy(teacher_targets(tc, cfg, data, kb_emb, out)) if tc.distill_from else None
    name_emb = data.class_name_emb()
    for epoch in range(start_epoch, tc.epochs):
        rng, order, views = _epoch_order(tc, epoch, n, tr["feats"].shape[0])
        model.train()
        model.encoder.stem.eval()
        t0, losses = time.time(), []
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * tc.batch_size:(step + 1) * tc.batch_size])
            x = torch.from_numpy(np.stack([tr["feats"][views[i], i] for i in idx]).astype(np.float32))
            qa = [tr["qa"][i][rng.integers(len(tr["qa"][i]))] for i in idx]
            u = torch.from_numpy(data.question_emb[[q for q, _, _ in qa]])
            ans = torch.tensor([a for _, a, _ in qa])
            labels = labels_all[idx]
            cap = torch.from_numpy(data.caption_emb[tr["caps"][idx, rng.integers(0, 5, len(idx))]])
            label_emb = torch.from_numpy(np.stack(
                [p[rng.integers(len(p))] for p in data.class_phr_emb]))

            tokens, queries = model.encoder.from_stem(x)
            cues, scores = retrieve_torch(kb_emb, queries, u, cfg.top_k, cfg.question_weight)
            emb, logits, _ = model.experts(tokens, cues, scores, u)
            scale = model.experts.logit_scale.exp().clamp(max=100)
            loss_cls = torch.nn.functional.cross_entropy(scale * emb @ label_emb.T, labels,
                                                         label_smoothing=0.1)
            loss_ans = torch.nn.functional.cross_entropy(logits, ans)
            a_scale = 20.0
            loss_align = (
                torch.nn.functional.cross_entropy(a_scale * queries[:, 2] @ kb_scene.T, class_scene[labels])
                + _soft_nce(a_scale * queries[:, 1] @ kb_obj.T, obj_t[idx])
                + _soft_nce(a_scale * queries[:, 0] @ kb_att.T, att_t[idx])
            )
            target = torch.arange(len(idx))
            loss_cap = sum(torch.nn.functional.cross_entropy(a_scale * queries[:, lv] @ cap.T, target)
                           for lv in range(3)) / 3
            broad_emb = torch.from_numpy(np.stack([p[rng.integers(len(p))] for p in data.broad_emb]))
            loss_broad = _soft_nce(scale * emb @ broad_emb.T, broad_t[labels])
            loss_scene_cap = torch.nn.functional.cross_entropy(a_scale * emb @ cap.T, target)
            loss = (loss_cls + loss_ans + 0.3 * loss_align + 0.3 * loss_cap
                    + 0.3 * loss_broad + 0.2 * loss_scene_cap)
            if soft is not None:
                log_p = torch.log_softmax(scale * emb @ name_emb.T, -1)
                loss = loss + tc.distill_weight * -(soft[idx] * log_p).sum(1).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append([float(loss), float(loss_cls), float(loss_ans), float(loss_align), float(loss_cap),
                           float(loss_broad), float(loss_scene_cap)])
            if step % 20 == 0:
                print(f"epoch {epoch} step {step}/{steps_per_epoch} loss {np.mean(losses[-20:], 0).round(3).tolist()} "
                      f"{(step + 1) * tc.batch_size / (time.time() - t0):.0f} img/s", flush=True)
        val = evaluate_split(model, data, "val", kb_emb)
        rec = {"epoch": epoch, "loss": np.mean(losses, 0).round(4).tolist(), "val_acc": val["acc"],
               "val_vqa": val["vqa"], "val_vqa_avg": val["vqa_avg"], "seconds": round(time.time() - t0, 1)}
        _save_epoch(ckpt_path, model, opt, sched, epoch, rec, out / "log.jsonl",
                    config=cfg.to_dict(), train=asdict(tc))
    final = out / "model.pt"
    torch.save({"model": model.state_dict(), "config": cfg.to_dict(), "answers": data.answers,
                "train": asdict(tc), "kb_checksum": kb.checksum}, final)
    return final
