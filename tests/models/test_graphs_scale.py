"""The modality kNN graph stays linear in memory: 200k items, never an n x n matrix."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from fusionrec.models.graphs import knn_graph

# An n x n float32 similarity matrix for 200k items would be 160 GB; the graph
# itself (5 links an item) and the IVF index are a few tens of MB.
PEAK_BOUND_MB = 400


def _clustered(n: int, d: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 400), d))
    return (centres[rng.integers(0, len(centres), n)] + 0.5 * rng.normal(size=(n, d))).astype(np.float32)


def test_approximate_graph_agrees_with_exact_on_clustered_items():
    x = _clustered(6000, 16)
    mask = np.ones(len(x), bool)
    mask[::7] = False
    exact = knn_graph(x, mask, 8)
    approx = knn_graph(x, mask, 8, exact_limit=0)
    assert approx.nnz == exact.nnz
    assert exact.multiply(approx).nnz / exact.nnz > 0.95
    # items without the modality have no links either way
    assert approx[np.flatnonzero(~mask)].nnz == 0 and approx[:, np.flatnonzero(~mask)].nnz == 0
    assert (approx.diagonal() == 0).all()


def test_knn_graph_for_200k_items_stays_under_memory_bound():
    code = textwrap.dedent(f"""
        import json, resource, sys
        sys.path.insert(0, {str(__import__('pathlib').Path(__file__).parent)!r})
        from test_graphs_scale import _clustered
        import numpy as np
        from fusionrec.models.graphs import knn_graph
        x = _clustered(200_000, 16)
        mask = np.ones(len(x), bool)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        g = knn_graph(x, mask, 5)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({{"nnz": int(g.nnz), "peak_mb": (after - before) / 1024}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["nnz"] == 200_000 * 5
    assert got["peak_mb"] < PEAK_BOUND_MB, got
