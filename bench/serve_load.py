"""Load test of ``fusionrec serve`` on loopback: QPS and p50/p99 latency at 1, 8 and 64 clients.

Acceptance 1 of the serving issue: an ml1m-size model (6,018 users x 3,018
items) must answer ``GET /recommendations/{user}?k=10`` with p99 < 25 ms and no
error at 8 concurrent clients on this 2-core machine.

* The model: BPR trained for a few epochs on /work/shared/data/ml1m (its train
  split), saved with ``save_model`` -- or ``--model DIR`` to reuse one.
* The server: a real ``python -m fusionrec.cli serve`` subprocess on 127.0.0.1.
* The client: a *separate process* running ``httpx.AsyncClient`` with N
  concurrent closed-loop workers (each sends its next request when the last one
  answered), bounded by a request count and a duration; latencies are measured
  client-side, so they include HTTP and the client's own scheduling.
* ``--schemathesis``: also run the schemathesis CLI against the live server's
  OpenAPI spec (bounded examples) and report server errors (acceptance 4).

Usage::

    nice -n 5 python bench/serve_load.py --workdir /tmp/serve-bench --clients 1 8 64 \\
        --requests 3000 --duration 60 --out docs/benchmarks/serve_load.json

The machine's load average is recorded before and after each level, since
other jobs on the shared CPU inflate latency.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
API_KEY = "bench-key-" + "0" * 24


def build_ml1m_model(out: Path, epochs: int, dim: int) -> Path:
    """Train BPR on the ml1m train split (no evaluation: the bench needs the shape, not the best epoch)."""
    from fusionrec.config import resolve_config
    from fusionrec.data.loading import load_dataset
    from fusionrec.models.io import save_model
    from fusionrec.models.registry import build_model
    from fusionrec.train.trainer import Trainer

    cfg = resolve_config(dataset="ml1m", model="bpr",
                         overrides=[f"model.params.embedding_size={dim}", f"train.epochs={epochs}",
                                    "train.progress=false", "train.checkpoint=false"])
    ds = load_dataset(cfg.data)
    data = ds.train_data([])
    model = build_model("bpr", data, dict(cfg.model.params))
    t0 = time.time()
    Trainer(model, data, cfg.train).fit()
    print(f"trained bpr on {ds} in {time.time() - t0:.0f}s", flush=True)
    save_model(model, cfg, ds, out)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(model_dir: Path, db: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "FUSIONREC_API_KEYS": API_KEY, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    cmd = [sys.executable, "-m", "fusionrec.cli", "serve", "--model", str(model_dir), "--db", str(db),
           "--port", str(port), "--no-encoders", "--log-level", "warning"]
    return subprocess.Popen(cmd, env=env, stdout=open(log, "wb"), stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("server did not become ready")


# ---------------------------------------------------------------------- client process
async def _client_main(url: str, users: list[str], clients: int, requests: int, duration: float, k: int,
                       seed: int) -> dict:
    import httpx

    rng = random.Random(seed)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    sent = 0
    deadline = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    # reads need a key unless the server runs with --public-reads
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=10.0, headers={"X-API-Key": API_KEY}) as http:
        for _ in range(min(50, requests)):  # warm-up (connections, caches), not measured
            await http.get(f"/recommendations/{rng.choice(users)}", params={"k": k})

        async def worker() -> None:
            nonlocal sent, errors
            while sent < requests and time.perf_counter() < deadline:
                sent += 1
                user = rng.choice(users)
                t0 = time.perf_counter()
                try:
                    r = await http.get(f"/recommendations/{user}", params={"k": k})
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append(time.perf_counter() - t0)

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p: float) -> float:
        return 1000 * lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")

    return {"clients": clients, "requests": len(lat), "seconds": round(wall, 2),
            "qps": round(len(lat) / wall, 1) if wall else 0.0, "p50_ms": round(pct(50), 2),
            "p90_ms": round(pct(90), 2), "p99_ms": round(pct(99), 2), "max_ms": round(1000 * lat[-1], 2) if lat else None,
            "errors": errors, "statuses": statuses}


def run_client_process(url: str, users: list[str], clients: int, requests: int, duration: float, k: int) -> dict:
    """Run the load client in its own Python process (so it does not share the server's GIL)."""
    payload = json.dumps({"url": url, "users": users, "clients": clients, "requests": requests,
                          "duration": duration, "k": k})
    out = subprocess.run([sys.executable, __file__, "--client-process"], input=payload.encode(),
                         capture_output=True, timeout=duration + 120)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.decode()[-2000:])
    return json.loads(out.stdout.decode().strip().splitlines()[-1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (and its threads) from /proc: CPU actually spent, whatever the load."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def run_schemathesis(url: str, max_examples: int, workdir: Path) -> dict:
    """schemathesis CLI against the live spec; returns exit code and the tail of its report."""
    cmd = ["schemathesis", "run", f"{url}/openapi.json", "--checks", "not_a_server_error",
           "--max-examples", str(max_examples), "-H", f"X-API-Key: {API_KEY}", "--exclude-path", "/admin/retrain",
           "--max-failures", "20", "--seed", "1"]
    t0 = time.time()
    out = subprocess.run(cmd, capture_output=True, timeout=900, cwd=workdir)
    text = out.stdout.decode(errors="replace")
    return {"exit_code": out.returncode, "seconds": round(time.time() - t0, 1), "command": " ".join(cmd),
            "summary": "\n".join(text.strip().splitlines()[-25:])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--client-process", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model", type=Path, help="saved model dir (default: train BPR on ml1m into --workdir)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/fusionrec-serve-bench"))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 8, 64])
    ap.add_argument("--requests", type=int, default=3000, help="requests per client level (upper bound)")
    ap.add_argument("--duration", type=float, default=60.0, help="seconds per client level (upper bound)")
    ap.add_argument("--repeats", type=int, default=1, help="runs per level; the report keeps each and the median")
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--schemathesis", type=int, default=0, metavar="N",
                    help="also run schemathesis with N examples per operation against the live server")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    if args.client_process:
        p = json.loads(sys.stdin.read())
        res = asyncio.run(_client_main(p["url"], p["users"], p["clients"], p["requests"], p["duration"], p["k"],
                                       seed=p["clients"]))
        print(json.dumps(res))
        return 0

    args.workdir.mkdir(parents=True, exist_ok=True)
    model_dir = args.model or args.workdir / "ml1m-bpr"
    if not (model_dir / "model.yaml").is_file():
        build_ml1m_model(model_dir, args.epochs, args.dim)
    users = [str(u) for u in json.loads((model_dir / "dataset" / "dataset.json").read_text())["user_ids"]]
    db = args.workdir / f"bench-{int(time.time())}.sqlite3"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(model_dir, db, port, args.workdir / "server.log")
    report: dict = {"model_dir": str(model_dir), "n_users": len(users), "levels": [], "cpu_count": os.cpu_count()}
    try:
        t0 = time.time()
        wait_ready(url, proc)
        report["server_start_seconds"] = round(time.time() - t0, 1)
        import httpx

        report["health"] = httpx.get(url + "/health", headers={"X-API-Key": API_KEY}).json()
        for clients in args.clients:
            runs = []
            for rep in range(args.repeats):
                before, cpu0 = loadavg(), cpu_seconds(proc.pid)
                res = run_client_process(url, users, clients, args.requests, args.duration, args.k)
                res["loadavg_before"], res["loadavg_after"] = before, loadavg()
                # server CPU per request (warm-up included in the count): a load-independent cost figure
                n = res["requests"] + min(50, args.requests)
                res["server_cpu_ms_per_request"] = round(1000 * (cpu_seconds(proc.pid) - cpu0) / max(n, 1), 3)
                runs.append(res)
                print(json.dumps(res), flush=True)
            med = sorted(runs, key=lambda r: r["p99_ms"])[len(runs) // 2]
            report["levels"].append({"clients": clients, "median_by_p99": med, "runs": runs})
        if args.schemathesis:
            report["schemathesis"] = run_schemathesis(url, args.schemathesis, args.workdir)
            print(report["schemathesis"]["summary"], flush=True)
        metrics = httpx.get(url + "/metrics", headers={"X-API-Key": API_KEY}).text
        report["server_metrics_sample"] = [m for m in metrics.splitlines()
                                           if m.startswith(("fusionrec_index", "fusionrec_users"))]
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
