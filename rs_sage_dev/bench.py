"""``python -m core bench``: speed numbers, measured here and printed (``--json`` for machines)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np


def _best_of(fn, repeat: int = 50) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_retrieval(batch: int = 64, k: int = 8) -> dict:
    """3 levels x top-k for a batch of queries through FAISS (what the engine does per batch)."""
    from core.model.knowledge import KnowledgeBase

    kb = KnowledgeBase.load(user_dir=False)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((batch, 3, kb.embeddings.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    seconds = _best_of(lambda: kb.search_levels(q, k))
    return {"batch": batch, "levels": 3, "k": k, "entries": len(kb.entries),
            "best_ms": round(seconds * 1000, 3), "target_ms": 2.0}


def precision_name(engine) -> str:
    """'int8', 'float32', or which graph is which when they differ."""
    if engine.precision == engine.experts_precision:
        return engine.precision
    return f"{engine.precision} encoder + {engine.experts_precision} experts"


def bench_engine(n: int = 256) -> dict:
    """Classification throughput of the ONNX engine on synthetic tiles at the model input size,
    with the default view averaging and with one view (the fast path), for the shipped default
    (int8 graphs on CPU where their gates passed) and for float32; the roofline is taken on the float32 run, whose
    FLOPs compare with the float32 GEMM peak measured in the same run."""
    from core.model.engine import DEFAULT_VIEWS, Engine

    rng = np.random.default_rng(0)
    out: dict = {"tiles": n}
    for precision in ("auto", "float32"):
        engine = Engine.load(user_kb=False, precision=precision)
        s = engine.input_size
        if "tile_px" not in out:
            tiles = [rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for _ in range(n)]
        out.update(tile_px=s, device=engine.device)
        runs = {}
        for views in sorted({DEFAULT_VIEWS, 1}, reverse=True):
            engine.views = views
            engine.classify(tiles[:8])
            t = time.perf_counter()
            engine.classify(tiles)
            dt = time.perf_counter() - t
            runs[f"views_{views}"] = {"seconds": round(dt, 3), "tiles_per_s": round(n / dt, 1)}
        out[precision_name(engine)] = runs
        if precision == "auto":
            out["default_precision"] = precision_name(engine)
            out.update(runs)  # the shipped default's figures, as before
    from .roofline import roofline

    cfg = engine.meta.get("config", {})
    out["roofline"] = roofline(engine.model_dir, out["float32"][f"views_{DEFAULT_VIEWS}"]["tiles_per_s"],
                               DEFAULT_VIEWS, s, int(cfg.get("dim", 384)), int(cfg.get("grid", 4)),
                               int(engine.meta["top_k"]))
    return out


def bench_repeat_question(size: int = 2048) -> dict:
    """Ask about a 1024 x 1024 px region (4 m/px) twice: the second question reuses the encoded
    tiles (``core.imagery.tile_cache``), as the panel does; a different question too."""
    import tempfile

    from shapely.geometry import box

    from core.imagery.tile_cache import EncodedTileCache
    from core.model.engine import Engine
    from core.questions.regions import ask_region

    engine = Engine.load(user_kb=False)
    with tempfile.TemporaryDirectory() as tmp:
        raster = synthetic_raster(f"{tmp}/q.tif", size)
        region = box(500000.0, 4000000.0 - 2 * size, 500000.0 + 2 * size, 4000000.0)
        ask_region(engine, raster, box(500000.0, 4000000.0 - 500, 500500.0, 4000000.0), "Is there a river?",
                   gsd=4.0)  # warm the sessions and the text encoder
        cache = EncodedTileCache()
        out = {"region_px": size // 2, "gsd_m": 4.0}
        for name, q in (("first", "Is there a river?"), ("repeat", "Is there a river?"),
                        ("other_question", "How many buildings are there?")):
            t = time.perf_counter()
            res = ask_region(engine, raster, region, q, gsd=4.0, cache=cache)
            out[name + "_ms"] = round(1000 * (time.perf_counter() - t), 1)
        out["tiles"] = len(res.tiles)
    return out


def run_bench(args: argparse.Namespace) -> int:
    res: dict = {"machine": f"{platform.machine()} {platform.processor()}".strip()}
    if args.section in ("all", "retrieval"):
        res["retrieval"] = bench_retrieval()
    if args.section in ("all", "engine"):
        res["engine"] = bench_engine()
    if args.section in ("all", "labeller"):
        res["labeller"] = bench_labeller()
    if args.section == "dask":
        res["dask"] = bench_dask()
    if args.section in ("all", "cold"):
        res["cold_start"] = bench_cold()
        res["repeat_question"] = bench_repeat_question()
    if args.section == "similar":
        from core.model.engine import Engine

        from .open_eval import embed_paths, split_images
        from .similar_eval import bench_million

        paths, _, _ = split_images("eurosat", "test", 1000)
        res["similar"] = bench_million(embed_paths(Engine.load(user_kb=False), paths))
    if args.section == "big":
        res["labeller_20k"] = bench_labeller(size=20000, eager_tiles=0)
        res["labeller_50k_vrt"] = bench_labeller_vrt()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        if "retrieval" in res:
            r = res["retrieval"]
            print(f"retrieval: {r['levels']} levels x top-{r['k']} for {r['batch']} queries over "
                  f"{r['entries']} entries: {r['best_ms']:.3f} ms (target < {r['target_ms']} ms)")
        for key in ("labeller", "labeller_20k", "labeller_50k_vrt"):
            if key in res:
                lb = res[key]
                print(f"{key} ({lb.get('views', 1)} views): {lb['raster_px']}x{lb['raster_px']} px, "
                      f"{lb['tiles']} tiles of {lb['tile_px']} px "
                      f"in {lb['seconds']} s = {lb['tiles_per_s']} tiles/s, peak RSS {lb['peak_rss_mb']} MB")
                if "torch_eager" in lb:
                    te = lb["torch_eager"]
                    print(f"  torch eager, same model and tiles: {te['tiles_per_s']} tiles/s "
                          f"-> onnxruntime streaming is {te['onnx_speedup']}x faster ({te['weights']})")
        if "dask" in res:
            d = res["dask"]
            for key in ("single_process", "single_process_1_thread", "dask_1_workers", "dask_2_workers",
                        "tcp_1_workers", "tcp_2_workers"):
                r = d[key]
                print(f"dask section, {key.replace('_', ' ')}: {r['tiles']} tiles in {r['seconds']} s = "
                      f"{r['tiles_per_s']} tiles/s")
            print(f"  -> 2 workers / 1 worker: {d['two_vs_one_worker']}x; 2 workers / single process: "
                  f"{d['two_workers_vs_single_process']}x ({d['raster_px']}^2 px raster, {d['cpus']} CPUs); "
                  f"tcp:// 2 workers / 1 worker: {d['tcp_two_vs_one_worker']}x; first tcp:// run with shipping: "
                  f"{d['tcp_1_workers']['first_run_with_shipping_s']} s")
        if "cold_start" in res:
            c = res["cold_start"]
            for text in ("onnx", "torch"):
                r = c[text]
                print(f"cold Classify extent ({c['extent_px']}x{c['extent_px']} px, {r['tiles']} tiles), text encoder "
                      f"{text}: best {r['total_s']} s (imports {r['import_s']}, load {r['load_s']}, classify "
                      f"{r['classify_s']}); median {r['median_total_s']} s, worst {r['worst_total_s']} s of "
                      f"{c['repeats']}")
            print(f"  -> the torch-free runtime starts {c['speedup']}x faster (best of {c['repeats']} each); "
                  f"with the panel's background load the click costs the classify part: {c['onnx']['classify_s']} s")
        if "repeat_question" in res:
            r = res["repeat_question"]
            print(f"ask about a {r['region_px']}^2 px region ({r['tiles']} tiles): first {r['first_ms']} ms, same "
                  f"question again {r['repeat_ms']} ms, another question {r['other_question_ms']} ms "
                  "(encoded tiles cached)")
        if "engine" in res:
            e = res["engine"]
            for prec in dict.fromkeys([e["default_precision"], "float32"]):
                for key, v in e[prec].items():
                    print(f"engine classify, {key[6:]} view(s), {prec}: {e['tiles']} tiles of "
                          f"{e['tile_px']} px in {v['seconds']} s = {v['tiles_per_s']} tiles/s on {e['device']}")
            rf = e["roofline"]
            print(f"roofline: {rf['gflops_per_tile']} GFLOP per tile ({rf['views']} views; encoder "
                  f"{rf['encoder_gflops_per_view']}, experts {rf['experts_gflops_per_view']} per view) x "
                  f"{rf['tiles_per_s']} tiles/s (float32) = {rf['achieved_gflops']} GFLOP/s; same-run float32 "
                  f"GEMM peak {rf['gemm_peak']['peak_gflops']} GFLOP/s ({rf['gemm_peak']['what']}) -> "
                  f"{100 * rf['share_of_peak']:.0f} % of peak")
    return 0


def synthetic_raster(path: str, size: int, seed: int = 0) -> str:
    """A north-up 3-band uint8 GeoTIFF of textured blocks, written in strips (bounded memory)."""
    from osgeo import gdal, osr

    gdal.UseExceptions()
    ds = gdal.GetDriverByName("GTiff").Create(path, size, size, 3, gdal.GDT_Byte,
                                              options=["TILED=YES", "COMPRESS=DEFLATE", "BIGTIFF=IF_SAFER"])
    ds.SetGeoTransform((500000.0, 2.0, 0, 4000000.0, 0, -2.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    rng = np.random.default_rng(seed)
    strip = 512
    base = rng.integers(40, 220, (3, 64, 64)).astype(np.uint8)
    for y in range(0, size, strip):
        h = min(strip, size - y)
        yy, xx = np.mgrid[y:y + h, 0:size]
        for b in range(3):
            block = base[b][(yy // 256) % 64, (xx // 256) % 64].astype(np.int16)
            noise = rng.integers(-25, 25, (h, size), dtype=np.int16)
            ds.GetRasterBand(b + 1).WriteArray(np.clip(block + noise, 0, 255).astype(np.uint8), 0, y)
    ds = None
    return path


COLD_CHILD = """
import json, sys, tempfile, time
t0 = time.perf_counter()
from core.model.engine import Engine
from core.imagery.labeller import LabelParams, label_raster
raster, text = sys.argv[1], sys.argv[2]
t_import = time.perf_counter()
text_encoder = None
if text == "torch":  # the runtime before the ONNX text encoder: transformers + torch
    from rs_sage_dev.text_export import TorchTextEncoder
    text_encoder = TorchTextEncoder()
engine = Engine.load(user_kb=False)
if text_encoder is not None:
    engine.text = text_encoder
t_load = time.perf_counter()
with tempfile.TemporaryDirectory() as tmp:
    res = label_raster(LabelParams(raster=raster, out_gpkg=tmp + "/t.gpkg", gsd=4.0, tile=224,
                                   labels=["water", "forest", "farmland", "residential area"]), engine=engine)
t_done = time.perf_counter()
print(json.dumps({"tiles": res.labelled, "import_s": round(t_import - t0, 3), "load_s": round(t_load - t_import, 3),
                  "classify_s": round(t_done - t_load, 3), "total_s": round(t_done - t0, 3)}))
"""


def bench_cold(size: int = 2048, repeats: int = 5) -> dict:
    """Cold *Classify extent* in a fresh process: imports, engine + text encoder + knowledge base
    load, then the labeller on a 1024 x 1024 px extent at 4 m/px (a 2048 px raster at 2 m/px),
    for the ONNX text encoder (now) and the transformers + torch one (before); the best of N with
    its parts, and the median and worst total (a target is met only if the worst run meets it)."""
    import subprocess
    import sys
    import tempfile

    out: dict = {"extent_px": size // 2, "raster_px": size, "repeats": repeats}
    with tempfile.TemporaryDirectory() as tmp:
        raster = synthetic_raster(f"{tmp}/cold.tif", size)
        for text in ("onnx", "torch"):
            runs = []
            for _ in range(repeats):
                r = subprocess.run([sys.executable, "-c", COLD_CHILD, raster, text], capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(r.stderr[-2000:])
                runs.append(json.loads(r.stdout.strip().splitlines()[-1]))
            out[text] = min(runs, key=lambda x: x["total_s"])
            totals = sorted(x["total_s"] for x in runs)
            out[text].update(median_total_s=totals[len(totals) // 2], worst_total_s=totals[-1])
    out["speedup"] = round(out["torch"]["total_s"] / out["onnx"]["total_s"], 2)
    return out


def bench_dask(size: int = 8192, tile: int = 224) -> dict:
    """Tiles/s of the labeller in this process (onnxruntime on all cores), on Dask LocalClusters
    and on clusters of real ``dask scheduler`` / ``dask worker`` processes (no RS-SAGE on their
    path: the runtime and model pack are shipped) of 1 and 2 single-threaded workers, on the same
    raster in one run. Start-up, shipping and the workers' engine load are done by a warm-up run
    first and not counted in tiles/s; the shipping run's seconds are reported on their own."""
    import tempfile
    import time
    from pathlib import Path

    from distributed import Client

    from core.imagery.labeller import LabelParams, label_raster
    from core.model.engine import Engine
    from core.scale_out.runner import local_cluster

    from .process_cluster import ProcessCluster

    out: dict = {"raster_px": size, "tile_px": tile, "gsd_m": 2.0, "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp:
        raster = synthetic_raster(f"{tmp}/dask.tif", size)
        warm = synthetic_raster(f"{tmp}/warm.tif", 512)
        engine = Engine.load(user_kb=False)

        def run(name, client=None, eng=engine):
            p = LabelParams(raster, f"{tmp}/{name}.gpkg", gsd=2.0, tile=tile)
            res = label_raster(p, eng, dask_client=client)
            return {"tiles": res.labelled, "seconds": round(res.seconds, 2), "tiles_per_s": round(res.tiles_per_s, 1)}

        def warm_up(name, client) -> float:
            t0 = time.perf_counter()
            label_raster(LabelParams(warm, f"{tmp}/{name}.gpkg", gsd=2.0, tile=tile), engine, dask_client=client)
            return round(time.perf_counter() - t0, 2)

        label_raster(LabelParams(warm, f"{tmp}/w.gpkg", gsd=2.0, tile=tile), engine)
        out["single_process"] = run("single")
        out["single_process_1_thread"] = run("single1", eng=Engine.load(user_kb=False, threads=1))
        for n in (1, 2):
            with local_cluster(n) as cluster, Client(cluster) as client:
                warm_up(f"w{n}", client)
                out[f"dask_{n}_workers"] = run(f"dask{n}", client)
        for n in (1, 2):
            folder = Path(tmp) / f"cluster{n}"
            folder.mkdir()
            with ProcessCluster(folder, n) as cluster, Client(cluster.address) as client:
                first = warm_up(f"t{n}", client)  # ships runtime and model pack (cache is empty)
                out[f"tcp_{n}_workers"] = {**run(f"tcp{n}", client), "first_run_with_shipping_s": first}
    one = out["dask_1_workers"]["tiles_per_s"]
    out["two_vs_one_worker"] = round(out["dask_2_workers"]["tiles_per_s"] / one, 2) if one else None
    out["two_workers_vs_single_process"] = round(
        out["dask_2_workers"]["tiles_per_s"] / out["single_process"]["tiles_per_s"], 2)
    tcp_one = out["tcp_1_workers"]["tiles_per_s"]
    out["tcp_two_vs_one_worker"] = round(out["tcp_2_workers"]["tiles_per_s"] / tcp_one, 2) if tcp_one else None
    return out


LABEL_CHILD = """
import json, sys
from rs_sage_dev.bench import peak_rss_mb, precision_name
from core.model.engine import Engine
from core.imagery.labeller import LabelParams, label_raster
raster, tmp, tile = sys.argv[1], sys.argv[2], int(sys.argv[3])
gsd = float(sys.argv[4]) if len(sys.argv) > 4 else 2.0
engine = Engine.load(user_kb=False)
res = label_raster(LabelParams(raster=raster, out_gpkg=tmp + "/out.gpkg", out_tif=tmp + "/out.tif",
                               gsd=gsd, tile=tile), engine=engine)
print(json.dumps({"tiles": res.labelled, "seconds": round(res.seconds, 2), "gsd_m": gsd,
                  "tiles_per_s": round(res.tiles_per_s, 1), "device": res.device, "views": engine.views,
                  "precision": precision_name(engine), "peak_rss_mb": peak_rss_mb()}))
"""


def peak_rss_mb() -> int:
    """VmHWM: this process image's peak RSS. Unlike ru_maxrss it restarts at exec, so a child
    process does not inherit the high-water mark of the parent that forked it."""
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def bench_labeller(size: int = 8192, tile: int = 224, eager_tiles: int = 128) -> dict:
    """Streaming labeller tiles/s and peak RSS on a synthetic raster, then torch eager, same tiles.

    The labeller runs in a child process of its own, so its peak RSS counts the labelling (model,
    text encoder, queues, GDAL cache) and not the making of the test raster.
    """
    import subprocess
    import sys
    import tempfile

    from core.model.engine import Engine
    from core.setup.paths import PROJECT_ROOT

    with tempfile.TemporaryDirectory() as tmp:
        raster = synthetic_raster(f"{tmp}/synthetic.tif", size)
        proc = subprocess.run([sys.executable, "-c", LABEL_CHILD, raster, tmp, str(tile)], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=True)
        child = json.loads(proc.stdout.strip().splitlines()[-1])
        out = {"raster_px": size, "tile_px": tile, **child}
        if eager_tiles:
            out["torch_eager"] = bench_eager(raster, Engine.load(user_kb=False), tile, eager_tiles,
                                             out["tiles_per_s"])
    return out


def virtual_raster(path: str, size: int, source: str, source_size: int) -> str:
    """A size x size px VRT mosaic that repeats one GeoTIFF: a huge raster without the disk."""
    from osgeo import gdal

    src = gdal.Open(source)
    gt = src.GetGeoTransform()
    ds = gdal.GetDriverByName("VRT").Create(path, size, size, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(gt)
    ds.SetProjection(src.GetProjection())
    for b in range(1, 4):
        band = ds.GetRasterBand(b)
        for y in range(0, size, source_size):
            for x in range(0, size, source_size):
                w, h = min(source_size, size - x), min(source_size, size - y)
                band.SetMetadataItem(f"source_{x}_{y}", (
                    f"<SimpleSource><SourceFilename relativeToVRT='0'>{source}</SourceFilename>"
                    f"<SourceBand>{b}</SourceBand><SrcRect xOff='0' yOff='0' xSize='{w}' ySize='{h}'/>"
                    f"<DstRect xOff='{x}' yOff='{y}' xSize='{w}' ySize='{h}'/></SimpleSource>"), "new_vrt_sources")
    ds = None
    return path


def bench_labeller_vrt(size: int = 50000, tile: int = 224, gsd: float = 8.0) -> dict:
    """Peak RSS labelling a 50,000² px virtual raster (at 8 m/px: every tile reads a 4x window)."""
    import subprocess
    import sys
    import tempfile

    from core.setup.paths import PROJECT_ROOT

    with tempfile.TemporaryDirectory() as tmp:
        src = synthetic_raster(f"{tmp}/src.tif", 4096)
        vrt = virtual_raster(f"{tmp}/huge.vrt", size, src, 4096)
        proc = subprocess.run([sys.executable, "-c", LABEL_CHILD, vrt, tmp, str(tile), str(gsd)], cwd=PROJECT_ROOT,
                              capture_output=True, text=True, check=True)
        return {"raster_px": size, "tile_px": tile, **json.loads(proc.stdout.strip().splitlines()[-1])}


def bench_eager(raster: str, engine, tile: int, n: int, ort_tiles_per_s: float) -> dict:
    """The same model in PyTorch eager on the same tiles (read, resize, encode, retrieve, experts)."""
    import torch

    from core.imagery.raster import default_rgb_bands, open_raster, percentile_stretch, read_rgb
    from core.setup.paths import PROJECT_ROOT

    from .evaluate import torch_scene_probs
    from .export import load_checkpoint
    from .model import ModelConfig, RsSageModel

    ckpt = PROJECT_ROOT / ".checkpoints" / "full" / "model.pt"
    if ckpt.is_file():
        model, _ = load_checkpoint(ckpt, engine.input_size)
        weights = "trained checkpoint"
    else:  # speed does not depend on the weights; say which were used
        model = RsSageModel(ModelConfig.from_dict({**engine.meta["config"], "input_size": engine.input_size})).eval()
        weights = "architecture of the shipped model, ImageNet backbone (no checkpoint here)"
    torch.set_num_threads(2)
    ds = open_raster(raster)
    bands = default_rgb_bands(ds)
    st = percentile_stretch(ds, bands)
    t = time.perf_counter()
    done = 0
    while done < n:
        tiles = []
        for i in range(done, min(done + 32, n)):
            x, y = (i * tile) % (ds.RasterXSize - tile), ((i * tile) // (ds.RasterXSize - tile)) * tile
            rgb, _ = read_rgb(ds, bands, x, y, tile, tile, tile, tile, st)
            tiles.append(rgb)
        torch_scene_probs(model, engine, engine._preprocess(tiles), engine.default_labels).argmax(1)
        done += len(tiles)
    dt = time.perf_counter() - t
    return {"tiles": n, "views": engine.views, "seconds": round(dt, 2), "tiles_per_s": round(n / dt, 1),
            "weights": weights,
            "onnx_speedup": round(ort_tiles_per_s / (n / dt), 2)}
