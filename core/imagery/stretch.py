"""The contrast stretch from raw band values to the 0..255 RGB the model reads.

Its own small module so that ``valid_pixels`` (which computes stretches) and ``raster`` (which
applies them) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Stretch:
    """Per-band linear stretch to 0..255: values at ``low`` map to 0, at ``high`` to 255."""

    low: np.ndarray
    high: np.ndarray

    def apply(self, bands: np.ndarray) -> np.ndarray:
        """bands [C,H,W] (any dtype) -> [H,W,C] uint8."""
        x = bands.astype(np.float32)
        lo = self.low.reshape(-1, 1, 1)
        span = np.maximum(self.high.reshape(-1, 1, 1) - lo, 1e-6)
        out = np.clip((x - lo) / span * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(out.transpose(1, 2, 0))
