"""How other sensors see a scene: the degradations used both to train (random) and to evaluate
(fixed conditions) robustness to sensor, scale and radiometry.

Landsat and Sentinel-2 differ from Google Earth RGB in resolution (10-30 m: blur), per-channel
gains and gamma (another colour balance), haze (a bright bluish veil, lower contrast), 16-bit
values that reach the model only through a contrast stretch, noise and compression. Every
function takes and returns float32 HxWx3 in 0..255.
"""

from __future__ import annotations

import io

import numpy as np


def _resize(img: np.ndarray, w: int, h: int, resample: str = "bilinear") -> np.ndarray:
    from PIL import Image

    mode = {"bilinear": Image.BILINEAR, "box": Image.BOX, "bicubic": Image.BICUBIC}[resample]
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c]), mode="F").resize((w, h), mode))
             for c in range(img.shape[2])]
    return np.stack(chans, -1).astype(np.float32)


def coarser(img: np.ndarray, factor: float) -> np.ndarray:
    """Lose resolution by ``factor`` (area-averaged down, bilinear back up): a coarser sensor."""
    h, w = img.shape[:2]
    small = _resize(img, max(2, int(round(w / factor))), max(2, int(round(h / factor))), "box")
    return _resize(small, w, h, "bilinear")


def colour_balance(img: np.ndarray, gains, gamma: float) -> np.ndarray:
    x = np.clip(img / 255.0, 0, 1) ** gamma
    return np.clip(x * np.asarray(gains, np.float32) * 255.0, 0, 255)


def haze(img: np.ndarray, amount: float, colour=(185, 195, 215)) -> np.ndarray:
    return img * (1 - amount) + np.asarray(colour, np.float32) * amount


def saturation(img: np.ndarray, factor: float) -> np.ndarray:
    grey = img.mean(axis=2, keepdims=True)
    return np.clip(grey + (img - grey) * factor, 0, 255)


def noise(img: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    return np.clip(img + rng.normal(0, sigma, img.shape).astype(np.float32), 0, 255)


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, "JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB")).astype(np.float32)


def sixteen_bit_stretch(img: np.ndarray, offsets, gains, low_pct: float = 2, high_pct: float = 98) -> np.ndarray:
    """As 16-bit digital numbers (offset + gain * radiance per band), then back to 8 bits through
    the labeller's own per-band percentile stretch (``core.imagery.raster.Stretch``)."""
    from core.imagery.raster import Stretch

    dn = np.asarray(offsets, np.float32) + img * np.asarray(gains, np.float32)
    dn = np.round(dn).astype(np.uint16).transpose(2, 0, 1)
    lo = np.percentile(dn.reshape(3, -1), low_pct, axis=1)
    hi = np.percentile(dn.reshape(3, -1), high_pct, axis=1)
    return Stretch(lo.astype(np.float32), np.maximum(hi, lo + 1).astype(np.float32)).apply(dn).astype(np.float32)


LANDSAT_GAINS = (0.85, 0.95, 1.2)  # red, green, blue: Landsat-8 true colour reads bluish
LANDSAT_GAMMA = 1.25


def landsat_colour(img: np.ndarray) -> np.ndarray:
    """A fixed Landsat-like look: bluish balance, gamma, haze and duller colours."""
    return saturation(haze(colour_balance(img, LANDSAT_GAINS, LANDSAT_GAMMA), 0.2), 0.7)


def random_sensor(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training-time sensor shift: each degradation with its own probability and strength."""
    x = img.astype(np.float32)
    if rng.random() < 0.4:
        x = coarser(x, rng.uniform(1.5, 6.0))
    if rng.random() < 0.5:
        x = colour_balance(x, rng.uniform(0.75, 1.3, 3), rng.uniform(0.7, 1.5))
    if rng.random() < 0.3:
        x = haze(x, rng.uniform(0.05, 0.4), rng.uniform(150, 230, 3))
    if rng.random() < 0.3:
        x = sixteen_bit_stretch(x, rng.uniform(500, 8000, 3), rng.uniform(2, 30, 3),
                                rng.uniform(0, 5), rng.uniform(95, 100))
    if rng.random() < 0.3:
        x = saturation(x, rng.uniform(0.3, 1.3))
    if rng.random() < 0.25:
        x = noise(x, rng.uniform(1, 8), rng)
    if rng.random() < 0.25:
        x = jpeg(x, int(rng.integers(20, 80)))
    return x
