"""Colours that mean something: water blue, trees green, crops yellow, built-up red, roads grey,
bare land tan, for the shipped classes and, by text similarity, for any label a user types.

Each family is described by a few words; a label takes the family whose words its sentence
embedding is closest to (the same MiniLM encoder the model uses), and labels of one family get
successive shades. A label close to no family keeps a distinct categorical colour. The panel,
Processing and the class GeoTIFF's colour table all take their colours from here.
"""

from __future__ import annotations

import numpy as np

# family: (words that describe it, shades from the main one outwards)
FAMILIES: dict[str, tuple[str, list[tuple[int, int, int]]]] = {
    "water": ("water, lake, river, sea, pond, reservoir, harbour",
              [(31, 120, 200), (66, 160, 225), (8, 70, 150), (120, 190, 235)]),
    "wetland": ("wetland, marsh, swamp, mangrove", [(70, 160, 150), (110, 190, 175)]),
    "forest": ("forest, woods, trees, woodland", [(30, 110, 40), (60, 140, 60), (20, 80, 30)]),
    "grass": ("grassland, meadow, grass, park, lawn, golf course", [(120, 190, 90), (160, 210, 120), (95, 160, 70)]),
    "crops": ("cropland, farmland, agricultural fields, fields, crops",
              [(235, 205, 60), (250, 230, 120), (210, 170, 40)]),
    "built": ("urban area, residential, houses, buildings, town, city, built-up",
              [(200, 50, 50), (230, 100, 90), (160, 30, 40), (245, 150, 140)]),
    "industry": ("industrial area, factory, commercial, storage tanks, warehouse",
                 [(150, 80, 140), (185, 120, 175), (120, 60, 110)]),
    "transport": ("road, highway, railway, airport, parking lot, bridge, viaduct",
                  [(110, 110, 110), (150, 150, 150), (80, 80, 80), (185, 185, 185)]),
    "bare": ("bare land, desert, sand, beach, rocky mountain, hills, gravel, exposed ground",
             [(205, 170, 120), (225, 200, 160), (175, 135, 90), (150, 110, 75)]),
    "snow": ("snow and ice, glacier, snowfield", [(230, 240, 250)]),
}
CATEGORICAL = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
    (174, 199, 232), (255, 187, 120), (152, 223, 138), (255, 152, 150), (197, 176, 213),
    (196, 156, 148), (247, 182, 210), (199, 199, 199), (219, 219, 141), (158, 218, 229),
    (57, 59, 121), (99, 121, 57), (140, 109, 49), (132, 60, 57), (123, 65, 115),
    (82, 84, 163), (181, 207, 107), (231, 186, 82), (214, 97, 107), (206, 109, 189),
]
MIN_SIMILARITY = 0.34  # below this a label is "like nothing here" and keeps a categorical colour


def label_colours(labels: list[str], encoder=None) -> list[tuple[int, int, int]]:
    """One RGB colour per label, in order; the same labels always get the same colours."""
    from ..model.text_encoder import label_texts, shared_encoder

    if encoder is None:
        encoder = shared_encoder()
    names = list(FAMILIES)
    family_emb = encoder.encode([FAMILIES[n][0] for n in names])
    label_emb = (encoder.encode(label_texts(encoder, list(labels))) if labels  # as the engine reads them
                 else np.zeros((0, family_emb.shape[1]), np.float32))
    sims = label_emb @ family_emb.T
    used: dict[str, int] = {}
    out = []
    for i, _label in enumerate(labels):
        j = int(np.argmax(sims[i])) if len(names) else 0
        if sims[i, j] < MIN_SIMILARITY:
            out.append(CATEGORICAL[i % len(CATEGORICAL)])
            continue
        shades = FAMILIES[names[j]][1]
        k = used.get(names[j], 0)
        used[names[j]] = k + 1
        out.append(shades[k % len(shades)])
    return out
