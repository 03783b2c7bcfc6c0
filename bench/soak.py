"""Soak test of ``fusionrec serve``: 8 clients, mixed reads / events / item posts, server memory over time.

Acceptance 3 of issue 12: over 10 minutes on loopback the server's resident memory stays within
10% of its level after the first minute, with zero errors.

* The model: two_tower trained on the built-in demo shop (text + image features, so posted items
  are placed by the model's own item tower), saved with ``Recommender.save`` -- or ``--model DIR``.
* The server: a real ``python -m fusionrec.cli serve`` subprocess on 127.0.0.1 with its encoders
  (posted items are encoded), an admin key, rate limits off, and ``max_online_users`` small enough
  that the online-user LRU evicts and reloads during the run.
* The clients: a separate process with ``--clients`` closed-loop asyncio workers. Each request is
  drawn from the mix: ``GET /recommendations/{user}`` (trained users and online visitors),
  ``GET /items/{id}/similar``, ``POST /events`` (3 events, users from a pool larger than the LRU),
  ``POST /items`` (text for ids from a fixed pool of posted items: created once, then updated, so
  the catalogue does not grow by design during the run).
* Memory: the server's VmRSS from /proc every 5 s; the result compares minute 1 with the end.

Usage::

    OMP_NUM_THREADS=1 nice -n 5 python bench/soak.py --workdir /tmp/soak --minutes 10 \\
        --out docs/benchmarks/soak.json
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
API_KEY = "soak-key-" + "0" * 24
MIX = (("recommend", 0.55), ("similar", 0.15), ("events", 0.22), ("items", 0.08))
WORDS = ("red wool jumper", "leather boots", "summer dress", "denim jacket", "running shoes", "silk scarf",
         "rain coat", "linen shirt", "winter hat", "canvas bag")


def build_model(out: Path, seed: int) -> Path:
    import fusionrec

    data = fusionrec.load_data("demo", demo={"n_users": 300, "n_items": 80, "seed": seed})
    rec = fusionrec.Recommender("two_tower", embedding_size=32)
    rec.fit(data, epochs=4)
    return rec.save(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def start_server(model: Path, workdir: Path, port: int, max_online_users: int) -> subprocess.Popen:
    cfg = workdir / "serve.yaml"
    cfg.write_text(json.dumps({"max_online_users": max_online_users, "retrain_after_forget": False,
                               "rate_limits": {"read": 0, "write": 0, "admin": 0, "failed_auth": 0}}))
    env = {**os.environ, "FUSIONREC_API_KEYS": f"{API_KEY}:admin", "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    db = workdir / "soak.sqlite3"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "fusionrec.cli", "serve", "--model", str(model), "--db", str(db),
           "--config", str(cfg), "--port", str(port), "--log-level", "warning"]
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 -- lives as long as the server
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 300) -> dict:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode}")
        try:
            r = httpx.get(url + "/health", timeout=1)
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError("server did not become ready")


async def _one(http, kind: str, rng: random.Random, users: list[str], items: list[str], visitors: int,
               posted: int) -> int:
    if kind == "recommend":
        user = rng.choice(users) if rng.random() < 0.7 else f"visitor-{rng.randrange(visitors)}"
        r = await http.get(f"/recommendations/{user}", params={"k": 10})
        return 200 if r.status_code == 404 and user.startswith("visitor-") else r.status_code
    if kind == "similar":
        return (await http.get(f"/items/{rng.choice(items)}/similar", params={"k": 10})).status_code
    if kind == "events":
        user = f"visitor-{rng.randrange(visitors)}"
        events = [{"user_id": user, "item_id": rng.choice(items), "type": rng.choice(["view", "click", "cart"])}
                  for _ in range(3)]
        return (await http.post("/events", json={"events": events})).status_code
    text = f"A {rng.choice(WORDS)} with {rng.choice(WORDS)} details."
    body = {"items": [{"item_id": f"soak-item-{rng.randrange(posted)}", "text": text,
                       "attributes": {"title": text[:30]}}]}
    return (await http.post("/items", json=body)).status_code


async def _clients(url: str, users: list[str], items: list[str], clients: int, seconds: float, seed: int,
                   visitors: int, posted: int) -> dict:
    import httpx

    rng = random.Random(seed)
    kinds, weights = zip(*MIX)
    counts: dict[str, int] = {}
    errors: list[str] = []
    lat: dict[str, list[float]] = {k: [] for k in kinds}
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60.0,
                                 headers={"X-API-Key": API_KEY}) as http:

        async def worker() -> None:
            while time.perf_counter() < deadline:
                kind = rng.choices(kinds, weights)[0]
                t0 = time.perf_counter()
                try:
                    status = await _one(http, kind, rng, users, items, visitors, posted)
                except httpx.HTTPError as err:
                    status = f"{type(err).__name__}"
                lat[kind].append(time.perf_counter() - t0)
                counts[kind] = counts.get(kind, 0) + 1
                if status != 200:
                    errors.append(f"{kind}: {status}")

        await asyncio.gather(*(worker() for _ in range(clients)))

    def pct(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return round(1000 * xs[min(len(xs) - 1, int(p / 100 * len(xs)))], 1) if xs else float("nan")

    return {"requests": counts, "errors": len(errors), "error_examples": errors[:10],
            "p50_ms": {k: pct(v, 50) for k, v in lat.items()}, "p99_ms": {k: pct(v, 99) for k, v in lat.items()}}


def run_clients(args_json: str) -> None:
    a = json.loads(args_json)
    print(json.dumps(asyncio.run(_clients(**a))), flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default="/tmp/fusionrec-soak")
    p.add_argument("--model", help="a saved model folder (default: train two_tower on the demo shop)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--max-online-users", type=int, default=500)
    p.add_argument("--visitors", type=int, default=5000, help="pool of online user ids (more than the LRU holds)")
    p.add_argument("--posted-items", type=int, default=100, help="pool of posted item ids (created, then updated)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="write the result JSON here")
    p.add_argument("--client-process", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.client_process:
        run_clients(args.client_process)
        return 0
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else workdir / "model"
    if not (model / "model.yaml").is_file():
        t0 = time.time()
        build_model(model, args.seed)
        print(f"trained the soak model in {time.time() - t0:.0f}s", flush=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(model, workdir, port, args.max_online_users)
    try:
        health = wait_ready(url, server)
        described = json.loads((model / "dataset" / "dataset.json").read_text())
        users = [str(u) for u in described["user_ids"]]
        items = [str(i) for i in described["item_ids"]]
        seconds = args.minutes * 60
        client_args = json.dumps({"url": url, "users": users, "items": items, "clients": args.clients,
                                  "seconds": seconds, "seed": args.seed, "visitors": args.visitors,
                                  "posted": args.posted_items})
        load_before = os.getloadavg()
        client = subprocess.Popen([sys.executable, __file__, "--client-process", client_args],
                                  stdout=subprocess.PIPE, text=True)
        samples: list[tuple[float, int]] = []
        t0 = time.time()
        while client.poll() is None:
            samples.append((round(time.time() - t0, 1), rss_kib(server.pid)))
            time.sleep(5)
        out, _ = client.communicate()
        result = json.loads(out.strip().splitlines()[-1])
        load_after = os.getloadavg()
        minute1 = next((kib for t, kib in samples if t >= 60), samples[-1][1])
        end = samples[-1][1]
        after1 = [kib for t, kib in samples if t >= 60]
        result.update({
            "minutes": args.minutes, "clients": args.clients, "mix": dict(MIX), "model": health["model"],
            "n_users": health["n_users"], "n_items_at_start": health["n_items"],
            "max_online_users": args.max_online_users, "visitors": args.visitors,
            "posted_item_pool": args.posted_items, "seed": args.seed,
            "rss_mib_minute1": round(minute1 / 1024, 1), "rss_mib_end": round(end / 1024, 1),
            "rss_mib_max_after_minute1": round(max(after1 or [end]) / 1024, 1),
            "rss_change_pct": round(100 * (end - minute1) / minute1, 2),
            "rss_samples_mib": [(t, round(k / 1024, 1)) for t, k in samples],
            "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
            "health_after": __import__("httpx").get(url + "/health").json(),
        })
    finally:
        server.terminate()
        server.wait(timeout=60)
    summary = {k: result[k] for k in ("requests", "errors", "rss_mib_minute1", "rss_mib_end", "rss_change_pct",
                                      "p50_ms", "p99_ms", "loadavg_before", "loadavg_after")}
    print(json.dumps(summary, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["errors"] == 0 and abs(result["rss_change_pct"]) <= 10 else 1


if __name__ == "__main__":
    raise SystemExit(main())
