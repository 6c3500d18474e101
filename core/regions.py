"""Questions about a region larger than one tile: answered tile by tile, then aggregated.

Presence: yes where any tile says yes (the tiles that do are the evidence); count: the sum of
the tiles' counts (bin centres), re-binned; scene and rural/urban: area shares of the tiles'
answers, the largest share wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .engine import question_labels
from .errors import RsSageError
from .labeller import Cancelled, LabelParams, plan_for_engine
from .question_parse import parse_question
from .raster import Stretch, default_rgb_bands, read_valid_tile
from .valid_pixels import UserNoData, valid_stretch
from .vocab import COUNT_BINS, count_bin

BIN_VALUE = {"0": 0, "between 1 and 10": 4, "between 11 and 100": 40, "between 101 and 1000": 400,
             "more than 1000": 1500}


@dataclass
class TileAnswer:
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in the raster's CRS
    answer: str
    confidence: float
    scene: str


@dataclass
class RegionAnswer:
    question: str
    type: str
    answer: str
    confidence: float
    text: str
    tiles: list[TileAnswer]
    supporting: list[int]  # indices into tiles that support the answer
    cues: dict = field(default_factory=dict)
    router: dict = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    skipped_nodata: int = 0


def aggregate(qtype: str, tiles: list[TileAnswer]) -> tuple[str, float, list[int], dict[str, float]]:
    if not tiles:
        raise RsSageError("No tile of the region has enough valid pixels to answer.")
    if qtype == "presence":
        yes = [i for i, t in enumerate(tiles) if t.answer == "yes"]
        if yes:
            return "yes", max(tiles[i].confidence for i in yes), yes, {}
        return "no", min(t.confidence for t in tiles), list(range(len(tiles))), {}
    if qtype == "count":
        total = sum(BIN_VALUE.get(t.answer, 0) for t in tiles)
        nonzero = [i for i, t in enumerate(tiles) if t.answer != COUNT_BINS[0]]
        conf = float(np.mean([t.confidence for t in tiles]))
        return count_bin(total), conf, nonzero, {}
    key = (lambda t: t.scene) if qtype in ("scene", "open") else (lambda t: t.answer)
    shares = Counter(key(t) for t in tiles)
    best, n = shares.most_common(1)[0]
    support = [i for i, t in enumerate(tiles) if key(t) == best]
    conf = float(np.mean([tiles[i].confidence for i in support])) * n / len(tiles)
    return best, conf, support, {k: round(v / len(tiles), 4) for k, v in shares.most_common()}


RURAL_URBAN_Q = "Is this a rural or an urban area?"


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.0f} %" if total else "0 %"


def region_answer(parsed, tiles: list[TileAnswer], results, rural_urban, tile_ha: float,
                  label_list: list[str] | None = None):
    """Answers over the region's tiles for share, comparison, where and describe (open), each
    with the tiles that support it, so the map can show the evidence."""
    n = len(tiles)
    labels = Counter(t.scene for t in tiles)
    shares = {k: round(v / n, 4) for k, v in labels.most_common()}

    def area(k: int) -> str:
        """', about 12.3 ha' (empty when the tiles' ground size is unknown, e.g. a plain image)."""
        if tile_ha <= 0:
            return ""
        return f", about {k * tile_ha:,.1f} ha" if tile_ha >= 0.05 else f", about {k * tile_ha * 1e4:,.0f} m²"

    if parsed.type == "share":
        support = [i for i, t in enumerate(tiles) if t.scene == parsed.subject]
        k = len(support)
        conf = float(np.mean([tiles[i].confidence for i in support])) if support else \
            float(np.mean([1 - t.confidence for t in tiles]))
        others = ", ".join(f"{lab} {_pct(c, n)}" for lab, c in labels.most_common(3) if lab != parsed.subject)
        text = (f"{parsed.subject}: {_pct(k, n)} of the region ({k} of {n} tiles{area(k)})"
                + (f"; also {others}" if others else ""))
        return _pct(k, n), conf, support, shares, text
    if parsed.type == "comparison":
        a = [i for i, t in enumerate(tiles) if t.scene == parsed.subject]
        b = [i for i, t in enumerate(tiles) if t.scene == parsed.other]
        holds = {"more": len(a) > len(b), "less": len(a) < len(b), "equal": len(a) == len(b)}[parsed.relation]
        answer = "yes" if holds else "no"
        support = sorted(a + b)
        conf = float(np.mean([tiles[i].confidence for i in support])) if support else 0.5
        text = (f"{answer.capitalize()}: {parsed.subject} {_pct(len(a), n)} ({len(a)} tiles{area(len(a))}), "
                f"{parsed.other} {_pct(len(b), n)} ({len(b)} tiles{area(len(b))}) of {n} tiles, "
                f"by the scene label of each tile")
        return answer, conf, support, shares, text
    if parsed.type == "where":
        # A thing that is one of the labels is where the tiles carry that label (the map the user
        # sees agrees); anything else is where the presence head says yes.
        by_label = parsed.subject.casefold() in {lab.casefold() for lab in (label_list or labels)}
        if by_label:
            support = [i for i, t in enumerate(tiles) if t.scene.casefold() == parsed.subject.casefold()]
            how = "tiles labelled so"
        else:
            support = [i for i, t in enumerate(tiles) if t.answer == "yes"]
            how = "tiles where the model sees it"
        if not support:
            conf = float(np.mean([t.confidence for t in tiles]))
            return "not found", conf, [], shares, f"No {parsed.subject} found in any of the {n} tiles ({how})"
        conf = float(np.mean([tiles[i].confidence for i in support]))
        text = f"{parsed.subject}: in {len(support)} of {n} tiles{area(len(support))} ({how})"
        return f"{len(support)} of {n} tiles", conf, support, shares, text
    # describe
    top = labels.most_common(3)
    objects = Counter(c.name for r in results for c in r.cues.get("object", [])[:3])
    ru = Counter(r.answer for r in rural_urban)
    uncertain = sum(1 for r in results if getattr(r, "uncertain", False))
    parts = [", ".join(f"{lab} {_pct(c, n)}" for lab, c in top)]
    if objects:
        parts.append("things seen: " + ", ".join(name for name, _ in objects.most_common(4)))
    if ru:
        kind, c = ru.most_common(1)[0]
        parts.append(f"mostly {kind} ({c} of {n} tiles)")
    if uncertain:
        parts.append(f"{uncertain} tiles uncertain")
    best_label = top[0][0]
    support = [i for i, t in enumerate(tiles) if t.scene == best_label]
    conf = float(np.mean([tiles[i].confidence for i in support])) * len(support) / n
    text = f"A region of {n} tiles{area(n)}: " + "; ".join(parts) + "."
    return best_label, conf, support, shares, text


def ask_region(engine, raster: str, geometry, question: str, gsd: float | None = None,
               tile: int | None = None, bands: list[int] | None = None, stretch: Stretch | None = None,
               labels: list[str] | None = None, min_valid: float = 0.5, max_tiles: int = 400,
               nodata: UserNoData | None = None,
               cancelled: Callable[[], bool] | None = None,
               progress: Callable[[float], None] | None = None, cache=None) -> RegionAnswer:
    """``geometry``: a shapely polygon in the raster's CRS. ``cache`` (an EncodedTileCache): tiles
    encoded for an earlier question about the same pixels are reused, not read and encoded again."""
    from shapely.geometry import box

    parsed = parse_question(question)
    if geometry is None or geometry.is_empty or geometry.area <= 0:
        raise RsSageError("The region is empty; draw a polygon or rectangle with an area.")
    params = LabelParams(raster=raster, out_gpkg="", gsd=gsd, tile=tile, extent=geometry.bounds,
                         max_tiles=max_tiles)
    p = plan_for_engine(params, engine)
    ds, gt, grid, tile_gsd_m, tile = p.ds, p.gt, p.grid, p.gsd, p.tile
    bands = bands or default_rgb_bands(ds)
    auto_stretch, rule = valid_stretch(ds, bands, nodata)
    stretch = stretch or auto_stretch
    rule_text = rule.describe()
    encoded: list = []  # per tile: (tokens, queries) when cached, else None until encoded
    tile_keys: list = []  # per tile: its cache key (None without a cache)
    images, bounds, skipped = {}, [], 0
    for n, (_r, _c, x, y, size) in enumerate(grid.windows()):
        if cancelled and cancelled():
            raise Cancelled()
        b = (gt[0] + x * gt[1], gt[3] + (y + size) * gt[5], gt[0] + (x + size) * gt[1], gt[3] + y * gt[5])
        if not geometry.intersects(box(*b)):
            continue
        key = hit = None
        if cache is not None:
            key = cache.key(raster, bands, stretch, rule_text, (x, y, size), tile, engine.views)
            hit = cache.get(key)
        if hit is None:
            rgb = read_valid_tile(ds, bands, x, y, size, tile, stretch, min_valid, rule)
            if rgb is None:
                skipped += 1
                continue
            images[len(encoded)] = rgb
        encoded.append(hit)
        tile_keys.append(key)
        bounds.append(b)
        if progress:
            progress(50.0 * (n + 1) / grid.count)
    if not encoded:
        raise RsSageError(f"No tile of the region has {min_valid:.0%} valid pixels ({skipped} tiles "
                          f"mostly nodata; nodata here: {rule_text}).")
    todo = sorted(images)
    for i in range(0, len(todo), 32):
        if cancelled and cancelled():
            raise Cancelled()
        part = todo[i:i + 32]
        tokens, queries = engine.encode_images([images[j] for j in part])
        for n, j in enumerate(part):
            encoded[j] = (tokens[n], queries[n])
            if cache is not None:
                cache.put(tile_keys[j], tokens[n], queries[n])
        if progress:
            progress(50.0 + 40.0 * min(len(todo), i + 32) / len(todo))
    results, rural_urban = [], []
    label_key = tuple(question_labels(parsed, engine.check_labels(labels) if labels else engine.default_labels))
    for i in range(0, len(encoded), 32):
        chunk = encoded[i:i + 32]
        tokens, queries = np.stack([t for t, _ in chunk]), np.stack([q for _, q in chunk])
        # The tiles' scene labels, once per chunk: from the cache, or classified here (and cached),
        # then shared by every expert pass below.
        chunk_keys = tile_keys[i:i + len(chunk)]
        scenes = [cache.scene(k, label_key) for k in chunk_keys] if cache is not None else [None]
        if any(sc is None for sc in scenes):
            scenes = engine.classify_encoded(tokens, queries, list(label_key), 3)
            if cache is not None:
                for k, sc in zip(chunk_keys, scenes, strict=True):
                    cache.put_scene(k, label_key, sc)
        results += engine.ask_encoded(tokens, queries, parsed.text, list(label_key), scenes=scenes)
        if parsed.type == "open":  # a description says rural or urban too: one more cheap expert pass
            rural_urban += engine.ask_encoded(tokens, queries, RURAL_URBAN_Q, list(label_key), scenes=scenes)
    if progress:
        progress(100.0)
    tiles = [TileAnswer(b, r.answer, r.confidence, r.scene) for b, r in zip(bounds, results, strict=True)]
    tile_ha = (tile * tile_gsd_m) ** 2 / 1e4
    if parsed.type in ("share", "comparison", "where", "open"):
        answer, conf, support, shares, text = region_answer(parsed, tiles, results, rural_urban, tile_ha,
                                                            list(label_key))
        best = max(support, key=lambda i: tiles[i].confidence) if support else 0
        return RegionAnswer(parsed.text, parsed.type, answer, round(conf, 4), text, tiles, support,
                            results[best].cues, results[best].router, shares, skipped)
    answer, conf, support, shares = aggregate(parsed.type, tiles)
    best = max(support, key=lambda i: tiles[i].confidence) if support else 0
    cues, router = results[best].cues, results[best].router
    evidence = "; ".join(", ".join(c.name for c in cues[lv][:3]) for lv in ("scene", "object"))
    where = f"{len(support)} of {len(tiles)} tiles" if len(tiles) > 1 else "1 tile"
    text = f"{answer[:1].upper()}{answer[1:]} ({conf:.2f}, {where}): {evidence}"
    return RegionAnswer(parsed.text, parsed.type, answer, round(conf, 4), text, tiles, support,
                        cues, router, shares, skipped)
