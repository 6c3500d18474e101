"""``python -m core eval --ood``: how the model does away from AID's sensor, names and scenes.

Three parts, each against an in-domain reference measured in the same run:

* **sensor shift**: AID *validation* images (never the test split, which stays untouched for
  the headline number) degraded the way other sensors see a scene (``sensor_shift``), scored
  with the AID names; accuracy per condition and as a share of the clean accuracy;
* **label wording**: AID *test* images scored with other benchmarks' names for the same scenes
  and with broad land-cover names, against the AID names on the same images; every name is
  marked *seen* when it appears in a training text (class names, aliases, descriptions, broad
  concept wordings), so seen and never-seen wording can be told apart;
* **real rasters**: tiles cut from ``rgbn.tif`` and the UAV orthophoto, labelled by a person
  looking at them (``docs/ood_real_tiles.csv``), scored with broad names.

The Landsat-8 clip is reserved as a held-out check and is not part of this suite.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .dataset import AID_LABEL_TEXT, image_path, load_samples

# Other benchmarks' class names for AID's scenes (lower case, words separated), from their
# published class lists; an AID class a benchmark has no counterpart for is left out of its row.
OTHER_NAMES: dict[str, dict[str, str]] = {
    "NWPU-RESISC45": {
        "Airport": "airport", "BaseballField": "baseball diamond", "Beach": "beach", "Bridge": "bridge",
        "Church": "church", "Commercial": "commercial area", "DenseResidential": "dense residential",
        "Desert": "desert", "Farmland": "rectangular farmland", "Forest": "forest",
        "Industrial": "industrial area", "Meadow": "meadow", "MediumResidential": "medium residential",
        "Mountain": "mountain", "Parking": "parking lot", "Playground": "ground track field",
        "Pond": "lake", "Port": "harbor", "RailwayStation": "railway station", "River": "river",
        "SparseResidential": "sparse residential", "Stadium": "stadium", "StorageTanks": "storage tank",
        "Viaduct": "overpass",
    },
    "UCM": {
        "BaseballField": "baseball diamond", "Beach": "beach", "DenseResidential": "dense residential",
        "Farmland": "agricultural", "Forest": "forest", "MediumResidential": "medium residential",
        "Parking": "parking lot", "Port": "harbor", "River": "river",
        "SparseResidential": "sparse residential", "StorageTanks": "storage tanks", "Viaduct": "overpass",
    },
    "WHU-RS19": {
        "Airport": "airport", "Beach": "beach", "Bridge": "bridge", "Commercial": "commercial",
        "Desert": "desert", "Farmland": "farmland", "Forest": "forest", "Industrial": "industrial",
        "Meadow": "meadow", "MediumResidential": "residential", "Mountain": "mountain", "Park": "park",
        "Parking": "parking", "Playground": "football field", "Pond": "pond", "Port": "port",
        "RailwayStation": "railway station", "River": "river", "Viaduct": "viaduct",
    },
    "PatternNet": {
        "BaseballField": "baseball field", "Beach": "beach", "Bridge": "bridge",
        "DenseResidential": "dense residential", "Forest": "forest", "Parking": "parking lot",
        "Playground": "football field", "Port": "harbor", "River": "river",
        "SparseResidential": "sparse residential", "StorageTanks": "storage tank", "Viaduct": "overpass",
    },
    "RSI-CB256": {
        "Airport": "airport runway", "BareLand": "bare land", "Beach": "sandbeach", "Bridge": "bridge",
        "Commercial": "city building", "Desert": "desert", "Farmland": "green farmland",
        "Forest": "forest", "Mountain": "mountain", "Parking": "parkinglot", "Port": "marina",
        "River": "river", "MediumResidential": "residents",
    },
    # RSSCN7's seven Google Earth land-cover names (Grass, Field, Industry, RiverLake, Forest,
    # Resident, Parking): the kind of 7-name set issue 24 reports at 71 %; a stand-in on AID images.
    "RSSCN7": {
        "Meadow": "grass", "Farmland": "field", "Industrial": "industry", "River": "river lake",
        "Pond": "river lake", "Forest": "forest", "DenseResidential": "resident",
        "MediumResidential": "resident", "Parking": "parking",
    },
}

# Broad land-cover names; only AID classes that belong to one of them unambiguously are scored.
BROAD_NAMES: dict[str, str] = {
    "River": "water", "Pond": "water", "Farmland": "cropland", "Forest": "forest",
    "Meadow": "grassland", "DenseResidential": "urban area", "MediumResidential": "urban area",
    "Commercial": "urban area", "Industrial": "urban area", "Center": "urban area",
    "BareLand": "bare land", "Desert": "bare land",
}
# The same six concepts in wording that no training text uses (checked by ``seen_in_training``).
BROAD_UNSEEN = {"water": "lakes and rivers", "cropland": "fields", "forest": "woods",
                "grassland": "grass cover", "urban area": "town", "bare land": "exposed ground"}

SENSOR_CONDITIONS = ("clean", "10 m", "30 m", "30 m from a 5 m scene", "Landsat colour", "haze",
                     "16-bit stretch", "30 m + Landsat colour + 16-bit", "JPEG q25", "noise")
REAL_TILES = Path(__file__).resolve().parent.parent / "docs" / "ood_real_tiles.csv"
# AID's 150 px images span about 2-32 m/px with no per-image value; the geometric middle of that
# range, 8 m/px, is taken as typical: 10 m is a coarsening by 1.25, 30 m by 3.75. A harsher row
# assumes a 5 m scene (factor 6). Stated assumptions, not measured per image.
FACTOR_10M, FACTOR_30M, FACTOR_30M_FROM_5M = 1.25, 3.75, 6.0


def degrade(img: np.ndarray, condition: str, rng: np.random.Generator) -> np.ndarray:
    from . import sensor_shift as ss

    x = img.astype(np.float32)
    if condition == "clean":
        pass
    elif condition == "10 m":
        x = ss.coarser(x, FACTOR_10M)
    elif condition == "30 m":
        x = ss.coarser(x, FACTOR_30M)
    elif condition == "30 m from a 5 m scene":
        x = ss.coarser(x, FACTOR_30M_FROM_5M)
    elif condition == "Landsat colour":
        x = ss.landsat_colour(x)
    elif condition == "haze":
        x = ss.haze(x, 0.35)
    elif condition == "16-bit stretch":
        x = ss.sixteen_bit_stretch(x, (7200, 6500, 5900), (6.0, 7.0, 9.0))
    elif condition == "30 m + Landsat colour + 16-bit":
        x = ss.sixteen_bit_stretch(ss.landsat_colour(ss.coarser(x, FACTOR_30M)), (7200, 6500, 5900),
                                   (6.0, 7.0, 9.0))
    elif condition == "JPEG q25":
        x = ss.jpeg(x, 25)
    elif condition == "noise":
        x = ss.noise(x, 8.0, rng)
    else:
        raise ValueError(condition)
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)


def training_texts() -> set[str]:
    """Every label text the scene head is trained against (lower case)."""
    from core.model.knowledge import KnowledgeBase

    from .training import BROAD_CONCEPTS, class_phrasings

    kb = KnowledgeBase.load(user_dir=False)
    texts = {t.lower() for p in class_phrasings(kb) for t in p}
    texts |= {w.lower() for words, _ in BROAD_CONCEPTS.values() for w in words}
    return texts


def sensor_shift(engine, limit: int | None = None, conditions: tuple[str, ...] = SENSOR_CONDITIONS) -> dict:
    from .dataset import DEFAULT_LABELS
    from .prepare import load_rgb

    samples = [s for s in load_samples() if s.split == "val"][:limit]
    images = [load_rgb(image_path(s)) for s in samples]
    truth = np.array([s.label_index for s in samples])
    rows = {}
    for cond in conditions:
        rng = np.random.default_rng(0)
        shifted = [degrade(im, cond, rng) for im in images]
        pred = []
        for i in range(0, len(shifted), 64):
            pred += [DEFAULT_LABELS.index(r.label) for r in engine.classify(shifted[i:i + 64], DEFAULT_LABELS, 1)]
        rows[cond] = {"acc": float((np.array(pred) == truth).mean())}
    clean = rows["clean"]["acc"]
    for r in rows.values():
        r["of_clean"] = r["acc"] / clean if clean else 0.0
    return {"images": len(samples), "split": "val", "conditions": rows}


def label_wording(engine, tokens, queries, samples) -> dict:
    truth = [s.label for s in samples]
    seen = training_texts()

    def score(mapping: dict[str, str]) -> dict:
        idx = [i for i, c in enumerate(truth) if c in mapping]
        names = sorted(set(mapping.values()))
        aid_names = sorted({AID_LABEL_TEXT[c] for c in mapping})
        got = engine.classify_encoded(tokens[idx], queries[idx], names, top_k=1)
        ref = engine.classify_encoded(tokens[idx], queries[idx], aid_names, top_k=1)
        acc = float(np.mean([r.label == mapping[truth[i]] for i, r in zip(idx, got, strict=True)]))
        aid = float(np.mean([r.label == AID_LABEL_TEXT[truth[i]] for i, r in zip(idx, ref, strict=True)]))
        return {"images": len(idx), "classes": len(mapping), "labels": len(names), "acc": acc,
                "aid_names_acc": aid, "of_aid": acc / aid if aid else 0.0,
                "unseen_names": sorted(n for n in names if n.lower() not in seen)}

    mappings = {**OTHER_NAMES, "broad land cover": BROAD_NAMES,
                "broad, never-trained wording": {c: BROAD_UNSEEN[b] for c, b in BROAD_NAMES.items()}}
    rows = {name: score(m) for name, m in mappings.items() if any(c in m for c in truth)}
    return {"images": len(samples), "split": "test", "rows": rows}


def real_tiles(engine, path: Path = REAL_TILES) -> dict:
    """Hand-labelled tiles of real rasters, read exactly as the labeller reads them."""
    from core.imagery.raster import open_raster, read_valid_tile
    from core.imagery.valid_pixels import valid_stretch
    from core.setup.paths import data_root

    if not path.is_file():
        return {"skipped": f"{path} not found"}
    rows = list(csv.DictReader(path.open()))
    names = sorted({r["label"] for r in rows})
    hits, per_raster, detail = [], {}, []
    for r in rows:
        raster = Path(data_root()) / "gis" / r["raster"]
        ds = open_raster(raster)
        bands = [int(b) for b in r["bands"].split()]
        stretch, rule = valid_stretch(ds, bands)
        rgb = read_valid_tile(ds, bands, float(r["x"]), float(r["y"]), float(r["size"]), 224, stretch, 0.5, rule)
        if rgb is None:
            continue
        (res,) = engine.classify([rgb], names, 1)
        ok = res.label == r["label"]
        hits.append(ok)
        per_raster.setdefault(r["raster"], []).append(ok)
        detail.append({**r, "predicted": res.label, "score": round(res.score, 3)})
    return {"tiles": len(hits), "labels": names, "acc": float(np.mean(hits)) if hits else 0.0,
            "per_raster": {k: {"tiles": len(v), "acc": float(np.mean(v))} for k, v in per_raster.items()},
            "detail": detail}


def evaluate_ood(engine, tokens=None, queries=None, samples=None, limit: int | None = None) -> dict:
    if tokens is None:
        from .evaluate import load_test_images

        samples, images = load_test_images(limit)
        tokens, queries = engine.encode_images(images)
    return {"views": engine.views, "sensor_shift": sensor_shift(engine, limit),
            "label_wording": label_wording(engine, tokens, queries, samples),
            "real_tiles": real_tiles(engine)}


def mapping_markdown() -> list[str]:
    """The name mapping used by the label-wording rows, as a table for the docs."""
    from .dataset import AID_CLASSES

    benches = list(OTHER_NAMES)
    out = ["| AID class | " + " | ".join(benches) + " | broad | broad, never-trained |",
           "|---|" + "---|" * (len(benches) + 2)]
    for c in AID_CLASSES:
        cells = [OTHER_NAMES[b].get(c, "") for b in benches]
        broad = BROAD_NAMES.get(c, "")
        out.append(f"| {AID_LABEL_TEXT[c]} | " + " | ".join(cells) + f" | {broad} | {BROAD_UNSEEN.get(broad, '')} |")
    return out


def ood_markdown(ood: dict, before: dict | None = None) -> list[str]:
    """Tables for docs/results.md; ``before`` (the same suite on the previous model) side by side."""
    def pair(cur, old):
        return f"{100 * cur:.1f}" + (f" (before {100 * old:.1f})" if old is not None else "")

    out = ["## Out of domain (`python -m core eval --ood`)", ""]
    ss, bs = ood["sensor_shift"], (before or {}).get("sensor_shift", {}).get("conditions", {})
    out += [f"### Sensor shift: {ss['images']} AID validation images, AID names, {ood['views']} views", "",
            "| condition | top-1 % | share of clean |", "|---|---|---|"]
    for cond, r in ss["conditions"].items():
        old = bs.get(cond, {})
        out.append(f"| {cond} | {pair(r['acc'], old.get('acc'))} | {pair(r['of_clean'], old.get('of_clean'))} |")
    lw, bl = ood["label_wording"], (before or {}).get("label_wording", {}).get("rows", {})
    out += ["", "### Label wording: AID test images, other names for the same scenes", "",
            "| names | images | labels | top-1 % | AID names, same images % | share of AID "
            "| names in no training text |",
            "|---|---|---|---|---|---|---|"]
    for name, r in lw["rows"].items():
        old = bl.get(name, {})
        unseen = ", ".join(r["unseen_names"]) or "none (all seen)"
        out.append(f"| {name} | {r['images']} | {r['labels']} | {pair(r['acc'], old.get('acc'))} | "
                   f"{100 * r['aid_names_acc']:.1f} | {pair(r['of_aid'], old.get('of_aid'))} | {unseen} |")
    out += ["", "Names used per AID class (empty: that benchmark has no such scene; the image is left out "
            "of that row):", "", *mapping_markdown()]
    rt = ood["real_tiles"]
    if "tiles" in rt:
        old = (before or {}).get("real_tiles", {})
        out += ["", f"### Real rasters: {rt['tiles']} hand-labelled tiles, labels {', '.join(rt['labels'])}", "",
                f"top-1 {pair(rt['acc'], old.get('acc'))} %; "
                + "; ".join(f"{k}: {v['tiles']} tiles, {100 * v['acc']:.0f} %" for k, v in rt["per_raster"].items()),
                "", "| raster | tile (x, y, size px) | person | model | score |", "|---|---|---|---|---|"]
        for d in rt["detail"]:
            out.append(f"| {d['raster']} | {d['x']}, {d['y']}, {d['size']} | {d['label']} | {d['predicted']} | "
                       f"{d['score']} |")
    return out



def ablation_ood_markdown(ab: dict) -> list[str]:
    """The component ablations on the out-of-domain suite (``scripts/ablation_ood.py``)."""
    conds = ["clean", "30 m", "Landsat colour", "30 m + Landsat colour + 16-bit"]
    names = ["broad land cover", "broad, never-trained wording", "RSI-CB256"]
    out = [f"### Ablations out of domain ({ab['epochs']} epochs each, seed {ab['seed']}, {ab['views']} view)", "",
           "| variant | AID test top-1 | " + " | ".join(f"val, {c}" for c in conds) + " | "
           + " | ".join(f"test, {n} names" for n in names) + " | real tiles |",
           "|---|---|" + "---|" * (len(conds) + len(names) + 1)]
    for v, r in ab["rows"].items():
        ss = r["sensor_shift"]["conditions"]
        lw = r["label_wording"]["rows"]
        cells = [f"{100 * r['aid_test_top1']:.1f}", *(f"{100 * ss[c]['acc']:.1f}" for c in conds),
                 *(f"{100 * lw[n]['acc']:.1f}" for n in names), f"{100 * r['real_tiles'].get('acc', 0):.1f}"]
        out.append(f"| {v} | " + " | ".join(cells) + " |")
    return out
