#!/usr/bin/env python3
"""faiss-cpu (PyPI) on the scale benchmark's vectors: the baseline of student-svc's index.

Reads what `rd-scale vectors` wrote into DIR (items.f32 and queries.f32, whose inner products
are the served scores; truth.u32, the exact top 10) and, for HNSW (IndexHNSWFlat, inner
product), IVF (IndexIVFFlat, inner product, as many lists as student-svc's index) and IVF in
L2 over the augmented vectors (student-svc's own reduction), sweeps
the search knob (efSearch, nprobe), measures recall@10 on every query, and at the cheapest
setting that reaches TARGET recall times single queries (one query per search call, one
thread): p50, p99 and queries per second per core. Writes DIR/faiss.json.

usage: faiss_baseline.py DIR TARGET_RECALL LISTS [--skip-hnsw]
"""

import json
import os
import sys
import time

import faiss
import numpy as np

K = 10
TIMED_QUERIES = 2000


def load(d):
    meta = json.load(open(os.path.join(d, "vectors.json")))
    dim = meta["dim"]
    items = np.fromfile(os.path.join(d, "items.f32"), dtype="<f4").reshape(-1, dim)
    queries = np.fromfile(os.path.join(d, "queries.f32"), dtype="<f4").reshape(-1, dim)
    truth = np.fromfile(os.path.join(d, "truth.u32"), dtype="<u4").reshape(-1, K)
    return items, queries, truth


def recall(found, truth):
    hits = sum(len(set(f.tolist()) & set(t.tolist())) for f, t in zip(found, truth))
    return hits / truth.size


def timed(index, queries):
    """Single-query latency on one thread: one search call per query."""
    faiss.omp_set_num_threads(1)
    n = min(TIMED_QUERIES, len(queries))
    lat = np.empty(n)
    for i in range(n):
        q = queries[i : i + 1]
        t = time.perf_counter()
        index.search(q, K)
        lat[i] = time.perf_counter() - t
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    return {
        "p50_ms": float(np.percentile(lat, 50) * 1e3),
        "p99_ms": float(np.percentile(lat, 99) * 1e3),
        "qps_per_core": float(n / lat.sum()),
    }


def sweep(name, index, set_knob, knobs, queries, truth, target):
    points = []
    chosen = None
    for knob in knobs:
        set_knob(knob)
        _, found = index.search(queries, K)
        r = recall(found, truth)
        point = {"knob": knob, "recall_at_10": r}
        points.append(point)
        print(f"{name} {knob}: recall@10 {r:.4f}", flush=True)
        if r >= target:
            point.update(timed(index, queries))
            chosen = point
            print(f"{name} {knob}: {point}", flush=True)
            break
    return {"sweep": points, "at_target": chosen}


def main():
    d, target, lists = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    skip_hnsw = "--skip-hnsw" in sys.argv
    items, queries, truth = load(d)
    dim = items.shape[1]
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    out = {"faiss_version": faiss.__version__, "items": len(items), "dim": dim,
           "queries": len(queries), "target_recall": target, "threads_for_build": os.cpu_count()}

    if not skip_hnsw:
        t = time.perf_counter()
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 40
        hnsw.add(items)
        build = time.perf_counter() - t
        result = sweep("HNSW32", hnsw, lambda ef: setattr(hnsw.hnsw, "efSearch", ef),
                       [16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024],
                       queries, truth, target)
        result.update({"index": "HNSW32,Flat (inner product, efConstruction 40)",
                       "build_seconds": build})
        out["hnsw"] = result
        del hnsw

    t = time.perf_counter()
    quantizer = faiss.IndexFlatIP(dim)
    ivf = faiss.IndexIVFFlat(quantizer, dim, lists, faiss.METRIC_INNER_PRODUCT)
    ivf.train(items[np.random.default_rng(0).choice(len(items), min(len(items), 40 * lists), replace=False)])
    ivf.add(items)
    build = time.perf_counter() - t
    probes = [p for p in [1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512] if p <= lists]
    result = sweep(f"IVF{lists}", ivf, lambda p: setattr(ivf, "nprobe", p), probes,
                   queries, truth, target)
    result.update({"index": f"IVF{lists},Flat (inner product)", "build_seconds": build})
    out["ivf"] = result

    del ivf, quantizer
    # The same reduction student-svc uses: L2 over [x, sqrt(M^2 - |x|^2)] and [q, 0].
    norms = (items.astype(np.float64) ** 2).sum(axis=1)
    extra = np.sqrt(np.maximum(norms.max() - norms, 0)).astype("f4")[:, None]
    items_l2 = np.ascontiguousarray(np.hstack([items, extra]))
    queries_l2 = np.ascontiguousarray(np.hstack([queries, np.zeros((len(queries), 1), "f4")]))
    t = time.perf_counter()
    quantizer = faiss.IndexFlatL2(dim + 1)
    ivf_l2 = faiss.IndexIVFFlat(quantizer, dim + 1, lists, faiss.METRIC_L2)
    ivf_l2.train(items_l2[np.random.default_rng(0).choice(len(items), min(len(items), 40 * lists), replace=False)])
    ivf_l2.add(items_l2)
    build = time.perf_counter() - t
    result = sweep(f"IVF{lists}-L2-augmented", ivf_l2, lambda p: setattr(ivf_l2, "nprobe", p),
                   probes, queries_l2, truth, target)
    result.update({"index": f"IVF{lists},Flat (L2 on the augmented vectors, as student-svc)",
                   "build_seconds": build})
    out["ivf_l2_augmented"] = result

    best = [r["at_target"] for r in (out.get("hnsw"), out["ivf"], out["ivf_l2_augmented"])
            if r and r["at_target"]]
    out["best_qps_per_core"] = max((b["qps_per_core"] for b in best), default=None)
    json.dump(out, open(os.path.join(d, "faiss.json"), "w"), indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
