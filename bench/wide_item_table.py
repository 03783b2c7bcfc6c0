"""`fusionrec data validate` on item tables with many columns: CPU seconds per column count.

Writes one folder per column count (100 items x N integer attribute columns, 1,000
interactions), runs ``fusionrec data validate DIR -q`` in a fresh process for each, and
reports the child's CPU time (user + sys, so the shared machine's load barely matters) and
wall time. ``--pythonpath`` runs another checkout (e.g. the code before a fix).

    python bench/wide_item_table.py --columns 1000 2000 4000 20000 --out docs/benchmarks/wide_item_table.json
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_folder(root: Path, n_columns: int, seed: int = 0) -> Path:
    folder = root / f"cols{n_columns}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    (folder / "interactions.csv").write_text(
        "user_id,item_id\n" + "".join(f"u{i % 50},i{i % 100}\n" for i in range(1000)))
    with open(folder / "items.csv", "w") as fh:
        fh.write("item_id," + ",".join(f"c{j}" for j in range(n_columns)) + "\n")
        fh.writelines(f"i{i}," + ",".join(map(str, rng.integers(0, 9, n_columns))) + "\n" for i in range(100))
    return folder


def run_one(folder: Path, pythonpath: str | None, timeout: float) -> dict[str, float | str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-W", "ignore", "-m", "fusionrec.cli", "data", "validate",
                               str(folder), "-q"], check=False, env=env, capture_output=True, timeout=timeout)
        status = "ok" if proc.returncode == 0 else f"exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        status = f"killed after {timeout:.0f} s wall"
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "status": status,
            "load": " ".join(f"{x:.1f}" for x in os.getloadavg())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--columns", type=int, nargs="+", default=[1000, 2000, 4000, 20000])
    ap.add_argument("--pythonpath", default=None, help="run fusionrec from this checkout instead")
    ap.add_argument("--timeout", type=float, default=600.0, help="wall seconds per run before it is killed")
    ap.add_argument("--out", default=None, help="append the results to this JSON file")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.columns:
            row = {"columns": n, **run_one(make_folder(Path(tmp), n), args.pythonpath, args.timeout)}
            print(json.dumps(row), flush=True)
            rows.append(row)
    if args.out:
        path = Path(args.out)
        previous = json.loads(path.read_text()) if path.is_file() else []
        previous.append({"pythonpath": args.pythonpath or "this checkout", "rows": rows})
        path.write_text(json.dumps(previous, indent=1))


if __name__ == "__main__":
    main()
