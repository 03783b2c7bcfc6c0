"""Image encoding speed: glibc's malloc thresholds x images per network call x torch threads.

Why this exists: EfficientNet-Lite0 on a 64-image batch spent about twice its user time in
the kernel, faulting in and zeroing the activation buffers glibc had handed back after the
previous batch (``perf``: ``clear_page_erms``, ``exc_page_fault``). fusionrec now keeps
freed memory in the heap (``fusionrec/allocator.py``) and runs the network on slices of
``micro_batch`` images. This script measures each combination in a fresh process (the
allocator setting is per process and cannot be undone), on the same decoded images, model
loading and decoding excluded, and prints images/s with user and system CPU seconds.

    HF_HUB_OFFLINE=1 python bench/image_allocator.py --images /path/to/jpgs --n 256 --reps 3

``--images`` is a folder searched recursively for .jpg/.png (e.g. the demo shop's rendered
photos under $FUSIONREC_CACHE/demo/*/images, or ../shared/data/ml100k/images).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
import torch
from fusionrec.allocator import keep_freed_memory
keep_freed_memory()
from fusionrec.encoders import build_encoder
paths, micro, threads = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
enc = build_encoder("efficientnet-lite0", micro_batch=micro)
loaded = [enc.load(p) for p in paths]
batch = 64
enc.encode(enc.collate(loaded[:batch]))  # model load and first-call set-up, not timed
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for s in range(0, len(loaded), batch):
    enc.encode(enc.collate(loaded[s:s + batch]))
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
print(json.dumps({"images_per_s": len(loaded) / (t1 - t0), "user_s": r1.ru_utime - r0.ru_utime,
                  "sys_s": r1.ru_stime - r0.ru_stime}))
"""


def _one(paths: list[str], keep: bool, micro: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "FUSIONREC_KEEP_FREED_MEMORY": "1" if keep else "0", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths), str(micro), str(threads)],
                         env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", required=True, help="folder of .jpg/.png files (searched recursively)")
    ap.add_argument("--n", type=int, default=256, help="images per measurement")
    ap.add_argument("--reps", type=int, default=3, help="repetitions; the table gives medians")
    ap.add_argument("--micro", type=int, nargs="+", default=[64, 16, 4, 1])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", help="write every measurement as JSON here")
    args = ap.parse_args()
    paths = sorted(str(p) for p in Path(args.images).rglob("*") if p.suffix.lower() in (".jpg", ".png"))[:args.n]
    if len(paths) < args.n:
        sys.exit(f"--images {args.images}: found {len(paths)} images, need {args.n} (lower --n)")
    rows = []
    print(f"{len(paths)} images, 64 per batch, medians of {args.reps}; load {os.getloadavg()}")
    print("threads  keep_freed  micro  images/s  user s  sys s")
    for threads in args.threads:
        for keep in (False, True):
            for micro in args.micro:
                runs = [_one(paths, keep, micro, threads) for _ in range(args.reps)]
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                rows.append({"threads": threads, "keep_freed_memory": keep, "micro_batch": micro,
                             "runs": runs, **med})
                print(f"{threads:7d}  {str(keep):>10}  {micro:5d}  {med['images_per_s']:8.1f}  "
                      f"{med['user_s']:6.1f}  {med['sys_s']:5.1f}", flush=True)
    print(f"load at the end {os.getloadavg()}")
    if args.out:
        Path(args.out).write_text(json.dumps({"rows": rows, "n": len(paths)}, indent=1))


if __name__ == "__main__":
    main()
