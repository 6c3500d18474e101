"""Embeddings as a product, and "find similar": search a raster's tiles by example or by words.

Every labelled tile has a scene embedding (``Engine.embed``: the experts' scene head with the
default question, averaged over the engine's views, L2-normalised), the vector label texts are
scored against. ``EmbeddingSink`` writes them while the labeller streams (one process or Dask):

- ``<name>.gpkg``: layer ``embeddings`` with the tile polygon, ``tile_row``, ``tile_col``,
  ``label`` and ``vector`` (float32 little-endian bytes, ``dim`` values);
- ``<name>.faiss``: a FAISS index whose ids are the GeoPackage feature ids: exact inner product
  (``IndexFlatIP``) up to ``EXACT_MAX`` vectors, IVF above (recall@10 against exact measured by
  ``python -m core bench --section similar``).

``search`` ranks the tiles against a query made of positive example vectors, optional negative
ones (Rocchio: q = mean(pos) - 0.5 mean(neg), re-normalised) or a text embedding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import RsSageError

EXACT_MAX = 200_000  # flat search stays under 100 ms per query up to here on 2 cores (bench)
ROCCHIO_NEGATIVE = 0.5
NPROBE = 256  # IVF lists searched per query (of 4 sqrt(n))
LAYER = "embeddings"


def index_path(gpkg: str | Path) -> Path:
    return Path(gpkg).with_suffix(".faiss")


def make_index(vectors: np.ndarray, ids: np.ndarray, exact_max: int = EXACT_MAX):
    """Flat inner product up to ``exact_max`` vectors; IVF (4 sqrt(n) lists, NPROBE probed) above.
    At 1,000,000 vectors 32 probes gave recall@10 0.65 against exact (1.7 ms per query);
    ``python -m core bench --section similar`` measures the shipped setting."""
    import faiss

    d = vectors.shape[1]
    if len(vectors) <= exact_max:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
    else:
        nlist = int(4 * np.sqrt(len(vectors)))
        quantizer = faiss.IndexFlatIP(d)
        ivf = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(0)
        sample = vectors[rng.choice(len(vectors), min(len(vectors), 40 * nlist), replace=False)]
        ivf.train(np.ascontiguousarray(sample, np.float32))
        ivf.nprobe = NPROBE
        index = faiss.IndexIDMap2(ivf)
    index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.asarray(ids, np.int64))
    return index


class EmbeddingSink:
    """Tile vectors written as they come (bounded memory: a float32 file on disk), then the index."""

    def __init__(self, path: str, srs, dim: int):
        from osgeo import ogr

        self.path = Path(path)
        if self.path.suffix.lower() != ".gpkg":
            raise RsSageError(f"The embeddings file must end in .gpkg: {path}")
        self.partial = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}.gpkg")
        self.vec_file = self.path.with_name(f".{self.path.stem}.partial-{os.getpid()}.f32")
        self.dim = dim
        self.ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(self.partial))
        self.layer = self.ds.CreateLayer(LAYER, srs, ogr.wkbPolygon)
        for name, kind in (("tile_row", ogr.OFTInteger), ("tile_col", ogr.OFTInteger), ("label", ogr.OFTString),
                           ("dim", ogr.OFTInteger), ("vector", ogr.OFTBinary)):
            self.layer.CreateField(ogr.FieldDefn(name, kind))
        self.defn = self.layer.GetLayerDefn()
        self.vf = open(self.vec_file, "wb")
        self.fids: list[int] = []
        self.layer.StartTransaction()

    def add(self, bounds, attrs: dict, vector: np.ndarray) -> None:
        from osgeo import ogr

        x0, y0, x1, y1 = bounds
        f = ogr.Feature(self.defn)
        f.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON (({x0} {y1}, {x1} {y1}, {x1} {y0}, {x0} {y0}, {x0} {y1}))"))
        v = np.asarray(vector, "<f4").reshape(-1)
        f.SetField("tile_row", int(attrs["tile_row"]))
        f.SetField("tile_col", int(attrs["tile_col"]))
        f.SetField("label", str(attrs["label"]))
        f.SetField("dim", int(v.size))
        f.SetFieldBinaryFromHexString("vector", v.tobytes().hex())
        self.layer.CreateFeature(f)
        self.fids.append(f.GetFID())
        self.vf.write(v.tobytes())
        if len(self.fids) % 2000 == 0:
            self.layer.CommitTransaction()
            self.layer.StartTransaction()

    def close(self) -> dict[str, str]:
        self.layer.CommitTransaction()
        self.ds = None
        self.vf.close()
        vectors = np.fromfile(self.vec_file, "<f4").reshape(-1, self.dim)
        import faiss

        idx_tmp = self.partial.with_suffix(".faiss")
        faiss.write_index(make_index(vectors, np.array(self.fids, np.int64)), str(idx_tmp))
        os.replace(self.partial, self.path)
        os.replace(idx_tmp, index_path(self.path))
        self.vec_file.unlink(missing_ok=True)
        return {"embeddings": str(self.path), "index": str(index_path(self.path))}

    def abort(self) -> None:
        self.ds = None
        try:
            self.vf.close()
        except (OSError, ValueError):
            pass
        for p in (self.partial, self.vec_file, self.partial.with_suffix(".faiss")):
            Path(p).unlink(missing_ok=True)


@dataclass
class Store:
    """A raster's tile vectors: ids (GeoPackage fids), vectors, footprints, labels."""
    ids: np.ndarray
    vectors: np.ndarray
    wkt: list[str]
    labels: list[str]
    srs_wkt: str
    cells: list[tuple[int, int]] = field(default_factory=list)

    def vector_of(self, fid: int) -> np.ndarray:
        hit = np.flatnonzero(self.ids == fid)
        if not len(hit):
            raise RsSageError(f"No tile with id {fid} in this embeddings file.")
        return self.vectors[hit[0]]


def load_store(gpkg: str | Path) -> Store:
    from osgeo import gdal

    p = Path(gpkg)
    if not p.is_file():
        raise RsSageError(f"Embeddings file not found: {p}")
    try:
        ds = gdal.OpenEx(str(p), gdal.OF_VECTOR)
    except RuntimeError as exc:
        raise RsSageError(f"{p} cannot be read as a GeoPackage: {exc}") from exc
    lyr = ds.GetLayerByName(LAYER) if ds is not None else None
    if lyr is None:
        raise RsSageError(f"{p} has no '{LAYER}' layer; write one with 'python -m core label ... --embeddings'.")
    ids, vecs, wkt, labels, cells = [], [], [], [], []
    for f in lyr:
        raw = f.GetFieldAsBinary("vector")
        v = np.frombuffer(raw, "<f4")
        if v.size != f.GetField("dim"):
            raise RsSageError(f"{p}: tile {f.GetFID()} has a damaged vector.")
        ids.append(f.GetFID())
        vecs.append(v)
        wkt.append(f.GetGeometryRef().ExportToWkt())
        labels.append(f.GetField("label"))
        cells.append((f.GetField("tile_row"), f.GetField("tile_col")))
    srs = lyr.GetSpatialRef()
    if not vecs:
        raise RsSageError(f"{p} holds no tiles.")
    return Store(np.array(ids, np.int64), np.stack(vecs).astype(np.float32), wkt, labels,
                 srs.ExportToWkt() if srs else "", cells)


def query_vector(positives: list[np.ndarray], negatives: list[np.ndarray] | None = None) -> np.ndarray:
    """Rocchio: the mean of the positives minus half the mean of the negatives, unit length."""
    if not positives:
        raise RsSageError("Give at least one example (a tile, an image, a polygon) or a phrase.")
    q = np.mean(np.stack(positives), 0)
    if negatives:
        q = q - ROCCHIO_NEGATIVE * np.mean(np.stack(negatives), 0)
    n = float(np.linalg.norm(q))
    if not np.isfinite(n) or n == 0:
        raise RsSageError("The examples cancel out; give other positives or fewer negatives.")
    return (q / n).astype(np.float32)


@dataclass
class Match:
    fid: int
    similarity: float
    rank: int


def search(store: Store, query: np.ndarray, k: int | None = 10, threshold: float | None = None,
           exclude: set[int] | None = None, index=None) -> list[Match]:
    """The most similar tiles (top ``k``, or all at or above ``threshold``), best first."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 1):
        raise RsSageError(f"k must be a whole number of at least 1, not {k!r}.")
    if threshold is not None and not -1.0 <= float(threshold) <= 1.0:
        raise RsSageError(f"The similarity threshold must be between -1 and 1, not {threshold}.")
    exclude = exclude or set()
    want = len(store.ids) if k is None else min(len(store.ids), k + len(exclude))
    if index is not None:
        sims, ids = index.search(query[None].astype(np.float32), want)
        pairs = [(int(i), float(s)) for i, s in zip(ids[0], sims[0], strict=True) if i >= 0]
    else:
        sims = store.vectors @ query
        order = np.argsort(-sims, kind="stable")[:want]
        pairs = [(int(store.ids[j]), float(sims[j])) for j in order]
    out = []
    for fid, s in pairs:
        s = round(s, 6)  # as shown, so a similarity read off a result, used as threshold, keeps that tile
        if fid in exclude or (threshold is not None and s < threshold):
            continue
        out.append(Match(fid, s, len(out) + 1))
        if k is not None and len(out) == k:
            break
    return out


def write_matches(store: Store, matches: list[Match], out: str | Path) -> str:
    """A GeoPackage layer ``similar`` of the matched tiles with similarity and rank."""
    from osgeo import ogr, osr

    out = Path(out)
    if out.suffix.lower() != ".gpkg":
        raise RsSageError(f"The output must end in .gpkg: {out}")
    tmp = out.with_name(f".{out.stem}.partial-{os.getpid()}.gpkg")
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp))
    srs = osr.SpatialReference()
    if store.srs_wkt:
        srs.ImportFromWkt(store.srs_wkt)
    lyr = ds.CreateLayer("similar", srs if store.srs_wkt else None, ogr.wkbPolygon)
    for name, kind in (("tile_id", ogr.OFTInteger), ("rank", ogr.OFTInteger), ("similarity", ogr.OFTReal),
                       ("label", ogr.OFTString)):
        lyr.CreateField(ogr.FieldDefn(name, kind))
    pos = {int(fid): j for j, fid in enumerate(store.ids)}
    for m in matches:
        j = pos[m.fid]
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkt(store.wkt[j]))
        f.SetField("tile_id", m.fid)
        f.SetField("rank", m.rank)
        f.SetField("similarity", m.similarity)
        f.SetField("label", store.labels[j])
        lyr.CreateFeature(f)
    ds = None
    os.replace(tmp, out)
    return str(out)
