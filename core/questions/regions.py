"""Questions about a region larger than one tile: answered tile by tile, then aggregated.

Every tile is weighted by the area of its intersection with the drawn region (cut to the raster;
shapely in the layer's CRS, geodesic area for a geographic CRS), so shares, areas and counts are
of the region, never of whole tiles: a region's water can no longer exceed the region.
Presence: yes where any tile says yes (the tiles that do are the evidence); count: the sum of
the tiles' counts (bin centres) times the share of each tile inside the region, re-binned; scene
and rural/urban: area shares of the tiles' answers, the largest share wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import RsSageError
from ..imagery.labeller import Cancelled, LabelParams, plan_for_engine
from ..imagery.raster import Stretch, default_rgb_bands, read_valid_tile
from ..imagery.units import format_area
from ..imagery.valid_pixels import UserNoData, valid_stretch
from ..model.engine import question_labels
from ..model.vocab import COUNT_BINS, count_bin
from .question_parse import parse_question

BIN_VALUE = {"0": 0, "between 1 and 10": 4, "between 11 and 100": 40, "between 101 and 1000": 400,
             "more than 1000": 1500}


@dataclass
class TileAnswer:
    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax in the raster's CRS
    answer: str
    confidence: float
    scene: str
    weight: float = 1.0  # m² of the region this tile stands for (its part inside region and raster)
    part: float = 1.0  # that area as a share of the whole tile
    footprint: str = ""  # WKT of the tile cut to the region and raster (what the map highlights)


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
    region_m2: float = 0.0  # the drawn region's area
    valid_m2: float = 0.0  # the part of it answered from valid imagery


def aggregate(qtype: str, tiles: list[TileAnswer]) -> tuple[str, float, list[int], dict[str, float]]:
    if not tiles:
        raise RsSageError("No tile of the region has enough valid pixels to answer.")
    if qtype == "presence":
        yes = [i for i, t in enumerate(tiles) if t.answer == "yes"]
        if yes:
            return "yes", max(tiles[i].confidence for i in yes), yes, {}
        return "no", min(t.confidence for t in tiles), list(range(len(tiles))), {}
    if qtype == "count":
        total = sum(BIN_VALUE.get(t.answer, 0) * t.part for t in tiles)
        nonzero = [i for i, t in enumerate(tiles) if t.answer != COUNT_BINS[0]]
        conf = float(np.mean([t.confidence for t in tiles]))
        return count_bin(round(total)), conf, nonzero, {}
    key = (lambda t: t.scene) if qtype in ("scene", "open") else (lambda t: t.answer)
    shares = weighted_shares(tiles, key)
    best, share = next(iter(shares.items()))
    support = [i for i, t in enumerate(tiles) if key(t) == best]
    conf = float(np.mean([tiles[i].confidence for i in support])) * share
    return best, conf, support, shares


def weighted_shares(tiles: list[TileAnswer], key) -> dict[str, float]:
    """{value: share of the answered area}, largest first."""
    total = sum(t.weight for t in tiles) or 1.0
    sums: Counter = Counter()
    for t in tiles:
        sums[key(t)] += t.weight
    return {k: round(v / total, 4) for k, v in sums.most_common()}





RURAL_URBAN_Q = "Is this a rural or an urban area?"


def region_answer(parsed, tiles: list[TileAnswer], results, rural_urban, tile_ha: float = 0.0,
                  label_list: list[str] | None = None):
    """Answers over the region's tiles for share, comparison, where and describe (open), each
    with the tiles that support it, so the map can show the evidence. Shares and areas are of
    the answered part of the region (each tile weighted by its area inside it)."""
    n = len(tiles)
    total = sum(t.weight for t in tiles) or 1.0
    shares = weighted_shares(tiles, lambda t: t.scene)

    def w(idx: list[int]) -> float:
        return sum(tiles[i].weight for i in idx)

    def pct(m2: float) -> str:
        return f"{100 * m2 / total:.0f} %"

    def area(m2: float) -> str:
        """', about 12.3 ha' (empty when the tiles' ground size is unknown, e.g. a plain image)."""
        return f", about {format_area(m2)}" if tile_ha != 0 or any(t.weight != 1.0 for t in tiles) else ""

    top3 = list(shares.items())[:3]
    if parsed.type == "share":
        support = [i for i, t in enumerate(tiles) if t.scene == parsed.subject]
        k = w(support)
        conf = float(np.mean([tiles[i].confidence for i in support])) if support else \
            float(np.mean([1 - t.confidence for t in tiles]))
        others = ", ".join(f"{lab} {100 * s:.0f} %" for lab, s in top3 if lab != parsed.subject)
        text = (f"{parsed.subject}: {pct(k)} of the region ({len(support)} of {n} tiles{area(k)})"
                + (f"; also {others}" if others else ""))
        return pct(k), conf, support, shares, text
    if parsed.type == "comparison":
        a = [i for i, t in enumerate(tiles) if t.scene == parsed.subject]
        b = [i for i, t in enumerate(tiles) if t.scene == parsed.other]
        wa, wb = w(a), w(b)
        holds = {"more": wa > wb, "less": wa < wb, "equal": abs(wa - wb) <= 1e-6 * total}[parsed.relation]
        answer = "yes" if holds else "no"
        support = sorted(a + b)
        conf = float(np.mean([tiles[i].confidence for i in support])) if support else 0.5
        text = (f"{answer.capitalize()}: {parsed.subject} {pct(wa)} ({len(a)} tiles{area(wa)}), "
                f"{parsed.other} {pct(wb)} ({len(b)} tiles{area(wb)}) of {n} tiles, "
                f"by the scene label of each tile")
        return answer, conf, support, shares, text
    if parsed.type == "where":
        # A thing that is one of the labels is where the tiles carry that label (the map the user
        # sees agrees); anything else is where the presence head says yes.
        by_label = parsed.subject.casefold() in {lab.casefold() for lab in (label_list or shares)}
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
        text = f"{parsed.subject}: in {len(support)} of {n} tiles{area(w(support))} ({how})"
        return f"{len(support)} of {n} tiles", conf, support, shares, text
    # describe
    objects = Counter(c.name for r in results for c in r.cues.get("object", [])[:3])
    ru = Counter(r.answer for r in rural_urban)
    uncertain = sum(1 for r in results if getattr(r, "uncertain", False))
    parts = [", ".join(f"{lab} {100 * sh:.0f} %" for lab, sh in top3)]
    if objects:
        parts.append("things seen: " + ", ".join(name for name, _ in objects.most_common(4)))
    if ru:
        kind, c = ru.most_common(1)[0]
        parts.append(f"mostly {kind} ({c} of {n} tiles)")
    if uncertain:
        parts.append(f"{uncertain} tiles uncertain")
    best_label = top3[0][0]
    support = [i for i, t in enumerate(tiles) if t.scene == best_label]
    conf = float(np.mean([tiles[i].confidence for i in support])) * top3[0][1]
    text = f"A region of {n} tiles{area(total)}: " + "; ".join(parts) + "."
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
    raster_box = box(gt[0], gt[3] + ds.RasterYSize * gt[5], gt[0] + ds.RasterXSize * gt[1], gt[3])
    measure = area_measure(p.srs)
    region_m2 = measure(geometry)
    inside = geometry.intersection(raster_box)
    bands = bands or default_rgb_bands(ds)
    auto_stretch, rule = valid_stretch(ds, bands, nodata)
    stretch = stretch or auto_stretch
    rule_text = rule.describe()
    encoded: list = []  # per tile: (tokens, queries) when cached, else None until encoded
    tile_keys: list = []  # per tile: its cache key (None without a cache)
    images, bounds, parts, skipped = {}, [], [], 0
    step = grid.src_per_stride
    for n, (r, c, x, y, size) in enumerate(grid.windows()):
        if cancelled and cancelled():
            raise Cancelled()
        b = (gt[0] + x * gt[1], gt[3] + (y + size) * gt[5], gt[0] + (x + size) * gt[1], gt[3] + y * gt[5])
        # The area a tile answers for is its own cell of the grid (cells partition the plan, so no
        # area is counted twice where an edge tile was shifted inwards), cut to region and raster.
        cx, cy = grid.x0 + c * step, grid.y0 + r * step
        cell = box(gt[0] + cx * gt[1], gt[3] + (cy + step) * gt[5], gt[0] + (cx + step) * gt[1], gt[3] + cy * gt[5])
        cut = inside.intersection(cell)
        if cut.is_empty or cut.area <= 0:
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
        parts.append((cut, measure(cut), cut.area / box(*b).area))
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
    import shapely

    # 2-D WKT, explicitly: inside desktop QGIS an older GEOS may be the one loaded, and it
    # refuses shapely's default output dimension ("WKT output dimension must be 2 or 3").
    tiles = [TileAnswer(b, r.answer, r.confidence, r.scene, m2, share,
                        shapely.to_wkt(cut, output_dimension=2, rounding_precision=-1))
             for b, r, (cut, m2, share) in zip(bounds, results, parts, strict=True)]
    valid_m2 = sum(t.weight for t in tiles)
    tile_ha = (tile * tile_gsd_m) ** 2 / 1e4
    if parsed.type in ("share", "comparison", "where", "open"):
        answer, conf, support, shares, text = region_answer(parsed, tiles, results, rural_urban, tile_ha,
                                                            list(label_key))
        best = max(support, key=lambda i: tiles[i].confidence) if support else 0
        return RegionAnswer(parsed.text, parsed.type, answer, round(conf, 4),
                            text.rstrip(".") + coverage(region_m2, valid_m2),
                            tiles, support, results[best].cues, results[best].router, shares, skipped,
                            region_m2, valid_m2)
    answer, conf, support, shares = aggregate(parsed.type, tiles)
    best = max(support, key=lambda i: tiles[i].confidence) if support else 0
    cues, router = results[best].cues, results[best].router
    evidence = "; ".join(", ".join(c.name for c in cues[lv][:3]) for lv in ("scene", "object"))
    where = f"{len(support)} of {len(tiles)} tiles" if len(tiles) > 1 else "1 tile"
    text = f"{answer[:1].upper()}{answer[1:]} ({conf:.2f}, {where}): {evidence}" + coverage(region_m2, valid_m2)
    return RegionAnswer(parsed.text, parsed.type, answer, round(conf, 4), text, tiles, support,
                        cues, router, shares, skipped, region_m2, valid_m2)


def coverage(region_m2: float, valid_m2: float) -> str:
    """'. Region 102.4 km², 98 % of it answered from valid imagery.'"""
    if region_m2 <= 0:
        return ""
    return f". Region {format_area(region_m2)}, {min(100.0, 100 * valid_m2 / region_m2):.0f} % of it answered " \
           "from valid imagery"


def area_measure(srs):
    """A function giving a shapely geometry's area in m² in the raster's CRS: planar for a
    projected CRS (times its unit), geodesic on WGS84 for a geographic one."""
    if srs is not None and srs.IsGeographic():
        from pyproj import Geod

        geod = Geod(ellps="WGS84")
        return lambda g: abs(geod.geometry_area_perimeter(g)[0])
    unit = srs.GetLinearUnits() if srs is not None else 1.0
    return lambda g: g.area * unit * unit
