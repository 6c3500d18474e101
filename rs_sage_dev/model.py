"""RS-SAGE model: multi-level encoder, semantic augmentation, semantic experts (torch).

Split in two for ONNX, with retrieval between them (see DESIGN.md §2):

* ``Encoder``: image -> level tokens T_l [B,3,G*G,d] and unit level queries q_l [B,3,d];
* FAISS (outside the graph): search(normalise(q_l + a*u)) -> cues C_l [B,3,k,d], scores s_l;
* ``ExpertNet``: (T, C, s, u) -> scene embedding, answer logits, router weights.

Levels are ordered fine, object, scene everywhere; the knowledge-base level of "fine" is
"attribute".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import BACKBONES, Stem, Top, channels, load_efficientnet, stem_blocks

LEVELS = ("fine", "object", "scene")
KB_LEVELS = ("attribute", "object", "scene")


@dataclass
class ModelConfig:
    backbone: str = "efficientnet-lite0"
    input_size: int = 160
    frozen_blocks: int | None = None  # None: frozen through stage 3 (the first shipped model)
    dim: int = 384
    grid: int = 4
    heads: int = 4
    top_k: int = 8
    question_weight: float = 0.5
    n_answers: int = 0
    retrieval: bool = True  # False: cues zeroed (ablation a)
    per_level_experts: bool = True  # False: one shared expert, no router (ablation b)
    levels: tuple[str, ...] = field(default_factory=lambda: LEVELS)  # ("scene",): ablation c

    def to_dict(self) -> dict:
        d = asdict(self)
        d["levels"] = list(self.levels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        d = dict(d)
        d["levels"] = tuple(d.get("levels", LEVELS))
        return cls(**d)


def pooling_matrix(size: int, grid: int) -> torch.Tensor:
    """[G*G, H*W] matrix equal to adaptive average pooling of a size x size map to grid x grid.

    The input size is fixed, so pooling is a constant matrix product, which ONNX exports
    (adaptive pooling of a dynamic-shaped tensor does not).
    """
    eye = torch.eye(size * size).view(size * size, 1, size, size)
    return F.adaptive_avg_pool2d(eye, grid).view(size * size, grid * grid).T.contiguous()


class LevelProjector(nn.Module):
    """Feature map -> G*G tokens in the text dimension, and a unit level query."""

    def __init__(self, in_ch: int, dim: int, grid: int, size: int):
        super().__init__()
        self.grid = grid
        self.register_buffer("pool", pooling_matrix(size, grid), persistent=False)
        self.proj = nn.Sequential(nn.Linear(in_ch, dim), nn.GELU(), nn.Linear(dim, dim))
        self.norm = nn.LayerNorm(dim)
        self.pos = nn.Parameter(torch.zeros(grid * grid, dim))
        self.query = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, fmap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (fmap.flatten(2) @ self.pool.T).transpose(1, 2)
        tokens = self.norm(self.proj(x)) + self.pos
        query = F.normalize(self.query(tokens.mean(1)), dim=-1)
        return tokens, query


class Encoder(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained: bool = True):
        super().__init__()
        net = load_efficientnet(cfg.backbone, pretrained)
        _, _, fine_block, obj_block = BACKBONES[cfg.backbone]
        n_stem = stem_blocks(cfg.backbone, cfg.frozen_blocks)
        self.stem = Stem(net, n_stem)
        self.top = Top(net, n_stem, fine_block, obj_block)
        c_fine, c_obj, c_scene = channels(cfg.backbone)
        sizes = (cfg.input_size // 8, cfg.input_size // 16, cfg.input_size // 32)
        self.projectors = nn.ModuleList(
            [LevelProjector(c, cfg.dim, cfg.grid, n)
             for c, n in zip((c_fine, c_obj, c_scene), sizes, strict=True)]
        )
        for p in self.stem.parameters():
            p.requires_grad_(False)

    def from_stem(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        fine, obj, scene = self.top(x)
        outs = [p(f) for p, f in zip(self.projectors, (fine, obj, scene), strict=True)]
        return torch.stack([t for t, _ in outs], 1), torch.stack([q for _, q in outs], 1)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.from_stem(self.stem(image))


class SemanticAugmentation(nn.Module):
    """Level tokens attend to [retrieved cues ; question]; retrieval scores bias the attention."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_t = nn.LayerNorm(dim)
        self.norm_m = nn.LayerNorm(dim)
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.bias_scale = nn.Parameter(torch.tensor(4.0))
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 2 * dim), nn.GELU(),
                                 nn.Linear(2 * dim, dim))

    def forward(self, tokens, cues, scores, u):
        b, t, d = tokens.shape
        mem = self.norm_m(torch.cat([cues, u.unsqueeze(1)], 1))
        bias = torch.cat([scores * self.bias_scale, torch.zeros_like(scores[:, :1])], 1)
        h, dh = self.heads, d // self.heads
        q = self.q(self.norm_t(tokens)).view(b, t, h, dh).transpose(1, 2)
        k = self.k(mem).view(b, -1, h, dh).transpose(1, 2)
        v = self.v(mem).view(b, -1, h, dh).transpose(1, 2)
        att = (q @ k.transpose(-1, -2)) / math.sqrt(dh) + bias[:, None, None, :]
        out = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, t, d)
        tokens = tokens + self.o(out)
        return tokens + self.ffn(tokens)


class Expert(nn.Module):
    """Question-guided pooling of a level's tokens, informed by the coarser level's output."""

    def __init__(self, dim: int):
        super().__init__()
        self.pool_query = nn.Parameter(torch.zeros(dim))
        self.q_from_u = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(3 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm = nn.LayerNorm(dim)

    def forward(self, tokens, context, u):
        query = self.pool_query + self.q_from_u(u)
        w = torch.einsum("btd,bd->bt", tokens, query) / math.sqrt(tokens.shape[-1])
        pooled = torch.einsum("bt,btd->bd", w.softmax(-1), tokens)
        return self.norm(pooled + self.mlp(torch.cat([pooled, context, u], -1)))


class ExpertNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.dim
        self.level_ids = [LEVELS.index(lv) for lv in cfg.levels]
        n = len(self.level_ids)
        self.augment = nn.ModuleList([SemanticAugmentation(d, cfg.heads) for _ in range(n)])
        n_experts = n if cfg.per_level_experts else 1
        self.experts = nn.ModuleList([Expert(d) for _ in range(n_experts)])
        self.router = nn.Linear(2 * d, n)
        self.scene_head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.u_proj = nn.Linear(d, d)
        self.answer_head = nn.Sequential(nn.Linear(3 * d, 2 * d), nn.GELU(), nn.Dropout(0.1),
                                         nn.Linear(2 * d, cfg.n_answers))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(20.0)))

    def forward(self, tokens, cues, scores, u):
        """tokens [B,3,T,d], cues [B,3,k,d], scores [B,3,k], u [B,d] -> emb, logits, router."""
        if not self.cfg.retrieval:
            cues, scores = torch.zeros_like(cues), torch.zeros_like(scores)
        outs, context = {}, torch.zeros_like(u)
        # Coarse to fine: the scene expert runs first and its output is context for the next.
        for j in reversed(range(len(self.level_ids))):
            lv = self.level_ids[j]
            s = self.augment[j](tokens[:, lv], cues[:, lv], scores[:, lv], u)
            expert = self.experts[j if self.cfg.per_level_experts else 0]
            outs[j] = expert(s, context, u)
            context = outs[j]
        stacked = torch.stack([outs[j] for j in range(len(self.level_ids))], 1)  # [B,n,d]
        if self.cfg.per_level_experts:
            router = self.router(torch.cat([u, stacked.mean(1)], -1)).softmax(-1)
        else:
            router = torch.full(stacked.shape[:2], 1.0 / stacked.shape[1], device=u.device)
        fused = (router.unsqueeze(-1) * stacked).sum(1)
        emb = F.normalize(self.scene_head(fused), dim=-1)
        pu = self.u_proj(u)
        logits = self.answer_head(torch.cat([fused, pu, fused * pu], -1))
        full_router = torch.zeros(u.shape[0], len(LEVELS), device=u.device)
        full_router[:, self.level_ids] = router
        return emb, logits, full_router


def retrieve_torch(kb_emb: list[torch.Tensor], queries: torch.Tensor, u: torch.Tensor,
                   k: int, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k per level in torch (training); identical ranking to FAISS IndexFlatIP.

    The query-plus-question vector is normalised the same way ``engine`` does before FAISS.
    """
    cues, scores = [], []
    for lv, emb in enumerate(kb_emb):
        q = F.normalize(queries[:, lv] + weight * u, dim=-1)
        sim = q @ emb.T
        top, idx = sim.topk(k, dim=-1)
        cues.append(emb[idx])
        scores.append(top)
    return torch.stack(cues, 1), torch.stack(scores, 1)


class RsSageModel(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg, pretrained)
        self.experts = ExpertNet(cfg)


class BaselineClassifier(nn.Module):
    """Ablation (e): a plain fine-tuned EfficientNet classifier, same backbone split and stem."""

    def __init__(self, cfg: ModelConfig, n_classes: int, pretrained: bool = True):
        super().__init__()
        self.cfg = cfg
        net = load_efficientnet(cfg.backbone, pretrained)
        _, _, fine_block, obj_block = BACKBONES[cfg.backbone]
        n_stem = stem_blocks(cfg.backbone, cfg.frozen_blocks)
        self.stem = Stem(net, n_stem)
        self.top = Top(net, n_stem, fine_block, obj_block)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(channels(cfg.backbone)[2], n_classes))
        for p in self.stem.parameters():
            p.requires_grad_(False)

    def from_stem(self, x: torch.Tensor) -> torch.Tensor:
        _, _, scene = self.top(x)
        return self.head(scene.mean((2, 3)))
