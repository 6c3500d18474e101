"""``python -m core kb build``: regenerate ``resources/knowledge`` deterministically.

Same inputs (the caption sets, ``kb_sources``), same order, same encoder -> same bytes. Floats
come from MiniLM on the CPU; on another CPU they may differ in the last bits (tolerance 1e-5),
which is why the manifest checksum is recomputed by every build rather than hard-coded.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from core.model.knowledge import EMBEDDINGS_FILE, ENTRIES_FILE, MANIFEST_FILE, Entry, checksum, write_entries
from core.setup.paths import KB_DIR, data_root

from .kb_sources import ATTRIBUTES, DETECTION_OBJECTS, SCENES
from .textproc import lemma_phrase, noun_phrases, tokens

CAPTION_SETS = ("rsicd", "rsitmd", "ucm", "sydney")
MIN_OBJECT_FREQ = 8
# Spelling variants and synonyms in the captions, merged onto one canonical object name.
OBJECT_SYNONYMS = {
    "airplane": "plane", "aeroplane": "plane", "aircraft": "plane", "airport plain": "plane",
    "automobile": "car", "harbour": "harbor", "habor": "harbor", "storagetank": "storage tank",
    "baseballfield": "baseball field", "footballfield": "football field",
    "footballground": "football field", "football playground": "football field",
    "soccer field": "football field", "railwaystation": "railway station",
    "train station": "railway station", "centre": "center", "tress": "tree", "raod": "road",
    "bridege": "bridge", "ruwnay": "runway", "termial": "terminal",
    "termial building": "terminal building", "baksetball court": "basketball court",
    "basketball field": "basketball court", "farm land": "farmland", "sand dune": "dune",
    "ploygon": "polygon", "car park": "parking lot", "parking": "parking lot",
    "highway": "freeway", "expressway": "freeway", "flyover": "overpass", "woods": "forest",
    "wood": "forest", "ocean": "sea", "snows": "snow", "diamand": "diamond",
    "coursea": "course", "golf coursea": "golf course", "raiway": "railway", "pon": "pond",
    "industrail": "industrial", "residentail": "residential", "containter": "container",
    "seewall": "seawall", "banke": "bank", "rectangule": "rectangle",
}
# Mined phrases that are not things one can see from above.
NOT_OBJECTS = {
    "region", "distance", "arrangement", "end", "way", "height", "style", "scale", "figure",
    "heart", "point", "item", "object", "either", "average", "fact", "sort", "theme", "economy",
    "resource", "appearance", "composition", "service", "background", "list", "rate", "reach",
    "work", "non", "grand", "pretty", "pure", "ahead", "can", "will", "cut", "step", "intensive",
    "hybrid", "dozen", "tight", "multilateral", "growth", "environment", "mess",
    "game", "collection", "endless", "esthetic", "aesthetic", "vastness", "sunshine",
    "sunlight", "altitude", "symmetrical", "octagonal", "hexagonal", "trapezoidal", "wavy",
    "uneven", "bald", "beige", "cream", "bleak", "radial", "diagonal", "vertical", "smaller",
    "sport", "sports", "industry", "family", "northeast", "northwest", "side-by", "lead",
    "imagery", "satellite imagery", "landscape", "scenery", "layout", "face", "file", "fast",
    "seperate", "situate", "diverge", "guy", "fold", "cast", "drop", "trace", "tract", "eye",
    "silver-gray", "arc", "semicircle", "semi-circle", "circle", "polygon", "rectangle",
    "triangle", "ellipse", "quadrilateral", "quadrangle", "hexagon", "octagon", "pentagon",
    "trapezoid", "square", "shape", "stripe", "band", "strip", "ring", "loop", "twist", "curve",
    "bend", "angle", "gap", "hole", "patch", "spot", "dot", "mark", "line", "row", "part",
    "layer", "section", "margin", "edge", "corner", "side", "middle", "center", "other", "one",
}


def _read_captions(root: Path) -> list[str]:
    lines: list[str] = []
    for name in CAPTION_SETS:
        folder = root / "captions" / f"{name}_precomp"
        for split in ("train", "test"):
            path = folder / f"{split}_caps.txt"
            if path.is_file():
                lines.extend(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    if not lines:
        raise FileNotFoundError(f"no caption files under {root / 'captions'}")
    return [line for line in lines if line]


def canonical_object(phrase: str) -> str:
    p = lemma_phrase(phrase)
    return OBJECT_SYNONYMS.get(p, p)


def mine_objects(captions: list[str]) -> tuple[Counter, dict[str, str], dict[str, set[str]]]:
    """Object phrase -> caption frequency, first example caption, merged spellings."""
    freq: Counter = Counter()
    example: dict[str, str] = {}
    merged: dict[str, set[str]] = {}
    for cap in captions:
        for raw in set(noun_phrases(cap)):
            name = canonical_object(raw)
            if name in NOT_OBJECTS or len(name) < 3:
                continue
            freq[name] += 1
            example.setdefault(name, cap)
            if raw != name:
                merged.setdefault(name, set()).add(raw)
    return freq, example, merged


def attribute_examples(captions: list[str]) -> dict[str, str]:
    """First caption using each attribute phrase (word-boundary match)."""
    out: dict[str, str] = {}
    names = [a for a, _ in ATTRIBUTES]
    for cap in captions:
        padded = " " + " ".join(tokens(cap)) + " "
        for a in names:
            if a not in out and f" {a.lower()} " in padded:
                out[a] = cap
    return out


def build_entries(root: Path) -> list[Entry]:
    captions = _read_captions(root)
    entries: list[Entry] = []
    for name, aliases, datasets, desc in SCENES:
        entries.append(Entry(id=f"scene:{name}", level="scene", name=name, text=desc,
                             source=",".join(datasets), aliases=list(aliases)))

    freq, example, merged = mine_objects(captions)
    objects: dict[str, Entry] = {}
    for name, n in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0])):
        if n < MIN_OBJECT_FREQ:
            continue
        ex = example[name].rstrip(" .")
        objects[name] = Entry(
            id=f"object:{name}", level="object", name=name,
            text=f"{name} seen from above, as captions say: \"{ex}\" ({n} captions)",
            source="captions", aliases=sorted(merged.get(name, set())))
    for dataset, names in DETECTION_OBJECTS.items():
        for raw in names:
            name = canonical_object(raw)
            if name in objects:
                if dataset not in objects[name].source:
                    objects[name].source += f",{dataset}"
                continue
            objects[name] = Entry(id=f"object:{name}", level="object", name=name,
                                  text=f"a {name} seen from above in aerial or satellite imagery",
                                  source=dataset, aliases=[raw] if raw != name else [])
    entries.extend(objects.values())

    examples = attribute_examples(captions)
    for name, kind in ATTRIBUTES:
        ex = examples.get(name)
        text = f"a {kind} attribute of aerial scenes" + (f", as in \"{ex.rstrip(' .')}\"" if ex else "")
        entries.append(Entry(id=f"attribute:{name}", level="attribute", name=name, text=text,
                             source=f"captions:{kind}" if ex else f"curated:{kind}"))
    return entries


def build(out_dir: Path | None = None, root: Path | None = None) -> dict:
    from core.model.text_encoder import DIM, ENCODER_NAME

    from .text_export import TorchTextEncoder

    out = Path(out_dir or KB_DIR)
    out.mkdir(parents=True, exist_ok=True)
    entries = build_entries(Path(root or data_root()))
    emb = TorchTextEncoder().encode([e.embedding_text() for e in entries])
    write_entries(out / ENTRIES_FILE, entries)
    np.save(out / EMBEDDINGS_FILE, emb.astype(np.float32))

    import faiss

    from core.model.knowledge import LEVELS
    counts = {}
    for level in LEVELS:
        rows = [i for i, e in enumerate(entries) if e.level == level]
        index = faiss.IndexFlatIP(DIM)
        index.add(emb[rows])
        faiss.write_index(index, str(out / f"index_{level}.faiss"))
        counts[level] = len(rows)
    manifest = {
        "encoder": ENCODER_NAME,
        "dim": DIM,
        "counts": counts,
        "checksum": checksum(out),
        "index": "faiss.IndexFlatIP per level (exact inner product on unit vectors)",
        "float_tolerance": 1e-5,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
