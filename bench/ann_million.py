"""ANN retrieval on a 1,000,000-item synthetic catalogue (acceptance 2 of the serving issue).

Target: top-10 retrieval at >= 1,000 queries/s in one process with recall@10
>= 0.95 against exact search; index memory reported.

* Catalogue: ``--n`` item vectors of ``--dim`` dims shaped like trained
  embeddings -- a mixture of ``--clusters`` Gaussian clusters with log-normal
  norms (popularity) -- because uniformly random vectors have no neighbourhood
  structure and are not what a recommender serves.
* Queries: user-like vectors near the item clusters (a random item scaled plus
  noise), as trained user vectors are.
* Ground truth: exact inner-product top-10 with faiss ``IndexFlatIP``.
* Indexes: the serving class :class:`fusionrec.serve.index.ItemIndex` itself
  (HNSW on inner products, IVF on MIPS-augmented vectors), so the numbers are
  for the code that serves.
* Throughput: (a) one query per call through ``ItemIndex.search`` -- what a
  request does, including the Python around faiss; (b) batched
  ``search_batch`` of 256 queries, faiss threads = all cores.
* Memory: serialised faiss index size plus the vector table the server keeps.

Usage::

    nice -n 5 python bench/ann_million.py --n 1000000 --dim 64 --kinds hnsw ivf \\
        --out docs/benchmarks/ann_million.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusionrec.serve.config import IndexConfig  # noqa: E402
from fusionrec.serve.index import ItemIndex  # noqa: E402


def synthetic_catalogue(n: int, dim: int, clusters: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    step = 200_000
    for start in range(0, n, step):  # chunked: keeps the float64 temporaries small
        m = min(step, n - start)
        x = centres[rng.integers(0, clusters, m)] + rng.normal(0, 0.6, (m, dim)).astype(np.float32)
        out[start:start + m] = x * rng.lognormal(0, 0.3, (m, 1)).astype(np.float32)
    return out


def user_queries(items: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = items[rng.integers(0, items.shape[0], n)]
    return (base * 0.8 + rng.normal(0, 0.5, base.shape)).astype(np.float32)


def recall_at(ids: np.ndarray, truth: np.ndarray, k: int) -> float:
    return float(np.mean([len(set(a[:k]) & set(b[:k])) / k for a, b in zip(ids, truth)]))


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--clusters", type=int, default=1000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--single", type=int, default=2000, help="queries timed one per call")
    ap.add_argument("--kinds", nargs="+", default=["hnsw", "ivf"])
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--ef-search", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument("--nlist", type=int, default=0)
    ap.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    report: dict = {"n": args.n, "dim": args.dim, "clusters": args.clusters, "queries": args.queries,
                    "cpu_count": os.cpu_count(), "faiss": faiss.__version__,
                    "loadavg_start": float(Path("/proc/loadavg").read_text().split()[0]), "indexes": []}
    t0 = time.time()
    items = synthetic_catalogue(args.n, args.dim, args.clusters, 0)
    queries = user_queries(items, args.queries, 1)
    report["generate_seconds"] = round(time.time() - t0, 1)
    t0 = time.time()
    flat = faiss.IndexFlatIP(args.dim)
    flat.add(items)
    _, truth = flat.search(queries, 10)
    report["exact_seconds"] = round(time.time() - t0, 1)
    report["exact_qps_batched"] = round(args.queries / (time.time() - t0), 1)
    del flat
    print(json.dumps({k: v for k, v in report.items() if k != "indexes"}), flush=True)

    for kind in args.kinds:
        cfg = IndexConfig(kind=kind, hnsw_m=args.hnsw_m, hnsw_ef_construction=args.ef_construction,
                          ivf_nlist=args.nlist)
        t0 = time.time()
        index = ItemIndex(items, cfg)
        build = time.time() - t0
        mem = index.memory_bytes()
        entry = {"kind": kind, "build_seconds": round(build, 1), "memory_mb": round(mem / 2**20, 1),
                 "index_only_mb": round((mem - items.nbytes) / 2**20, 1), "settings": []}
        if kind == "ivf":
            entry["nlist"] = int(index._index.nlist)
        knobs = args.ef_search if kind == "hnsw" else args.nprobe
        for knob in knobs:
            if kind == "hnsw":
                index.cfg.hnsw_ef_search = knob
                index._index.hnsw.efSearch = knob
            else:
                index._index.nprobe = knob
            # (a) batched
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            t0 = time.perf_counter()
            ids = np.vstack([index.search_batch(queries[i:i + 256], 10)[0] for i in range(0, len(queries), 256)])
            batched = len(queries) / (time.perf_counter() - t0)
            # process CPU time of the single-thread loop below: queries per second of one *dedicated*
            # core, independent of how many other jobs share the machine (wall-clock QPS is not)
            # (b) one query per call, as a request does (single faiss thread: requests run side by side)
            faiss.omp_set_num_threads(1)
            single_ids = []
            t0, c0 = time.perf_counter(), time.process_time()
            for q in queries[: args.single]:
                rows, _ = index.search(q, 10)
                single_ids.append(rows)
            single = args.single / (time.perf_counter() - t0)
            single_cpu = args.single / max(time.process_time() - c0, 1e-9)
            faiss.omp_set_num_threads(os.cpu_count() or 1)
            setting = {"ef_search" if kind == "hnsw" else "nprobe": knob,
                       "recall@10": round(recall_at(ids, truth, 10), 4),
                       "recall@10_single_path": round(recall_at(np.array(single_ids), truth[: args.single], 10), 4),
                       "qps_batched": round(batched, 1), "qps_single_query": round(single, 1),
                       "qps_single_query_per_cpu_second": round(single_cpu, 1),
                       "loadavg": float(Path("/proc/loadavg").read_text().split()[0])}
            entry["settings"].append(setting)
            print(json.dumps({"kind": kind, **setting}), flush=True)
        entry["peak_rss_mb_so_far"] = round(rss_mb(), 1)
        report["indexes"].append(entry)
        print(json.dumps({k: v for k, v in entry.items() if k != "settings"}), flush=True)
        del index
    report["loadavg_end"] = float(Path("/proc/loadavg").read_text().split()[0])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
