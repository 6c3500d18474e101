"""Roofline figures for ``python -m core bench``: the model's FLOPs per tile (counted from the
ONNX graphs) and the machine's own float32 GEMM rate at the model's shapes, measured in the same
run, so the engine's speed can be stated as a share of what this CPU can do."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def _run_shapes(model, feeds: dict[str, np.ndarray]) -> dict[str, list[int]]:
    """Real tensor shapes: the compute nodes' inputs and outputs are exposed and the graph run once
    (static shape inference stops at this export's dynamic Pad and Reshape nodes)."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    have = {o.name for o in model.graph.output}
    wanted = []
    for node in model.graph.node:
        if node.op_type in ("Conv", "MatMul", "Gemm"):
            for name in (node.input[0], node.input[1], node.output[0]):
                if name not in shapes and name not in have and name not in wanted:
                    wanted.append(name)
    for name in wanted:
        model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for name, value in zip(names, sess.run(names, feeds), strict=True):
        shapes[name] = list(np.shape(value))
    return shapes


def onnx_flops(path: str | Path, feeds: dict[str, np.ndarray]) -> dict:
    """FLOPs (2 x multiply-adds) of Conv, MatMul and Gemm nodes for these inputs; the other ops
    are memory-bound and are left out of the count."""
    import onnx

    model = onnx.load(str(path))
    shapes = _run_shapes(model, feeds)
    conv = matmul = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out, w = shapes.get(node.output[0]), shapes.get(node.input[1])
            if out and w:
                conv += 2 * int(np.prod(out)) * int(np.prod(w[1:]))
        elif node.op_type in ("MatMul", "Gemm"):
            a, b = shapes.get(node.input[0]), shapes.get(node.input[1])
            if a and b:
                trans_b = any(at.name == "transB" and at.i for at in node.attribute)
                n = b[-2] if trans_b else b[-1]
                matmul += 2 * int(np.prod(a[:-1])) * a[-1] * n
    return {"conv_flops": conv, "matmul_flops": matmul, "flops": conv + matmul}


def gemm_peak(threads_note: str = "numpy BLAS, all cores", seconds: float = 1.0) -> dict:
    """Best float32 GEMM rate of this machine at shapes like the model's 1x1 convolutions and
    attention (M = pixels x batch, K, N = channels), as the same-run reference."""
    shapes = [(6400, 96, 576), (1600, 144, 864), (400, 240, 1440), (2048, 384, 384), (4096, 1280, 384)]
    rng = np.random.default_rng(0)
    best = {}
    for m, k, n in shapes:
        a = rng.standard_normal((m, k), np.float32)
        b = rng.standard_normal((k, n), np.float32)
        a @ b
        reps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds / len(shapes):
            a @ b
            reps += 1
        dt = (time.perf_counter() - t0) / reps
        best[f"{m}x{k}x{n}"] = round(2 * m * k * n / dt / 1e9, 2)
    return {"gflops_by_shape": best, "peak_gflops": max(best.values()), "what": threads_note}


def roofline(model_dir: Path, tiles_per_s: float, views: int, input_size: int, dim: int, grid: int,
             top_k: int) -> dict:
    """The engine's achieved GFLOP/s (FLOPs per tile x tiles/s) and its share of the GEMM peak."""
    f32 = np.float32
    enc = onnx_flops(model_dir / "encoder.onnx", {"image": np.zeros((1, 3, input_size, input_size), f32)})
    exp = onnx_flops(model_dir / "experts.onnx", {
        "tokens": np.zeros((1, 3, grid * grid, dim), f32), "cues": np.zeros((1, 3, top_k, dim), f32),
        "cue_scores": np.zeros((1, 3, top_k), f32), "question": np.zeros((1, dim), f32)})
    per_tile = views * (enc["flops"] + exp["flops"])
    peak = gemm_peak()
    achieved = per_tile * tiles_per_s / 1e9
    return {"encoder_gflops_per_view": round(enc["flops"] / 1e9, 4),
            "experts_gflops_per_view": round(exp["flops"] / 1e9, 4),
            "gflops_per_tile": round(per_tile / 1e9, 4), "views": views, "tiles_per_s": tiles_per_s,
            "achieved_gflops": round(achieved, 2), "gemm_peak": peak,
            "share_of_peak": round(achieved / peak["peak_gflops"], 3)}
