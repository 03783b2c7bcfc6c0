"""RecBole 1.2.1's SASRec / GRU4Rec on ml100k, leave-one-out by time, full ranking (reference side of
docs/benchmarks/sequential.md), resumable across processes.

Runs in RecBole's own virtual environment, never fusionrec's (see the doc for the install):

    fusionrec data convert --dataset ml100k --out /tmp/seq/rb/ml100k --name ml100k
    cd /tmp/seq/rbwork     # RecBole writes log/ and log_tensorboard/ under the working folder
    OMP_NUM_THREADS=1 nice /tmp/recbole-venv/bin/python /work/main/bench/sequential_recbole.py \
        --data /tmp/seq/rb/ml100k --model SASRec --seed 2024 \
        --state /work/helpers/recbole_state/SASRec_2024 --wall-limit 7200 \
        --out /work/main/docs/benchmarks/sequential_recbole.jsonl
    # later, in another process or session: the same command with --resume

The models keep RecBole's default configuration (its model yaml and overall.yaml: CE loss, 50 items
of history, batch 2048, lr 0.001, 300 epochs, early stop after 10 evaluations); only the protocol
is set: the atomic ``.inter`` file ``fusionrec data convert`` wrote (every rating is an event),
leave-one-out by time (``LS: valid_and_test``, ``order: TO``), full ranking, Recall/NDCG at 10
and 20, NDCG@10 chooses the epoch on valid (as in the fusionrec runs), one torch thread.

Resuming. A run to early stop takes hours of wall time on a shared machine, so with ``--state DIR``
the whole training state is written to ``DIR/last.pth`` after every epoch (model, optimizer,
epoch, early-stopping counter, best valid score and result, the global python/numpy/torch RNG
states and the data loaders' generators), next to RecBole's own valid-best checkpoint
``DIR/best.pth``; ``--resume`` rebuilds the data and model as a fresh run would, then restores that
state, so the resumed run takes the same steps the uninterrupted one would have (checked: 2 epochs
in one process and 1 + 1 resumed give the same valid scores). A run stops cleanly after an epoch when
``--wall-limit`` would be passed by the next epoch, when ``--stop-after`` epochs were trained in this
process, or when the file ``DIR/STOP`` exists; it then tests the valid-best checkpoint so far into
``DIR/progress.json`` (not into ``--out``).

Timing. Per epoch, the wall and CPU seconds of RecBole's fit loop (training, validation, its
logging and best-checkpoint saving) are kept in the state, so they add up across resumes. The row
appended to ``--out`` when training ends (early stop or the epoch cap) gives ``wall_seconds`` /
``cpu_seconds`` = what one uninterrupted process would have spent: the first process's load and data
preparation + every epoch + the final test. What resuming itself costs (each later process's load
and data preparation, the per-epoch state saving) is reported apart (``resume_overhead``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

STATE_FILE, BEST_FILE, PROGRESS_FILE, STOP_FILE = "last.pth", "best.pth", "progress.json", "STOP"


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(t0: tuple[float, float]) -> list[float]:
    w, c = _clock()
    return [round(w - t0[0], 2), round(c - t0[1], 2)]


def _timed(fn, out: list[list[float]]):
    """``fn`` wrapped so every call appends its [wall, CPU] seconds to ``out``."""
    def wrapper(*args, **kwargs):
        t0 = _clock()
        try:
            return fn(*args, **kwargs)
        finally:
            out.append(_since(t0))
    return wrapper


class _Stop(Exception):
    """Raised after an epoch's state is saved, to end this process's share of the run."""


def _parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the folder holding <name>.inter (and named <name>)")
    ap.add_argument("--name", default="ml100k")
    ap.add_argument("--model", choices=["SASRec", "GRU4Rec"], required=True)
    ap.add_argument("--seed", type=int, default=2024)
    ap.add_argument("--epochs", type=int, default=None, help="cap epochs (default: RecBole's 300)")
    ap.add_argument("--state", default=None, help="folder for the per-epoch training state (outside the repo)")
    ap.add_argument("--resume", action="store_true", help="continue the run saved in --state")
    ap.add_argument("--wall-limit", type=float, default=None,
                    help="wall seconds for this process: stop after the epoch the next one would pass it")
    ap.add_argument("--stop-after", type=int, default=None, help="train at most this many epochs in this process")
    ap.add_argument("--out", required=True, help="JSONL file the finished run's row is appended to")
    args = ap.parse_args()
    if (args.resume or args.wall_limit or args.stop_after) and not args.state:
        ap.error("--resume, --wall-limit and --stop-after need --state DIR (where the run is saved)")
    return args


def _identity(args: argparse.Namespace) -> dict[str, Any]:
    """What a resumed run must share with the saved one."""
    return {"data": str(Path(args.data).resolve()), "name": args.name, "model": args.model,
            "seed": args.seed, "epochs": args.epochs}


def _rng_state(loaders: dict[str, Any]) -> dict[str, Any]:
    import numpy as np
    import torch
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "loaders": {k: dl.generator.get_state() for k, dl in loaders.items()}}


def _set_rng_state(state: dict[str, Any], loaders: dict[str, Any]) -> None:
    import numpy as np
    import torch
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    for k, dl in loaders.items():
        dl.generator.set_state(state["loaders"][k])


def _save_state(state_dir: Path, trainer: Any, loaders: dict[str, Any], log: dict[str, Any]) -> None:
    """Everything the next epoch depends on, written atomically (a kill mid-write keeps the last one)."""
    import torch
    blob = {"epoch": log["epochs_done"] - 1, "cur_step": trainer.cur_step,
            "best_valid_score": trainer.best_valid_score, "best_valid_result": trainer.best_valid_result,
            "train_loss_dict": trainer.train_loss_dict, "state_dict": trainer.model.state_dict(),
            "other_parameter": trainer.model.other_parameter(), "optimizer": trainer.optimizer.state_dict(),
            "rng": _rng_state(loaders), "log": log}
    tmp = state_dir / (STATE_FILE + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, state_dir / STATE_FILE)
    _write_progress(state_dir, log)


def _update_log(state_dir: Path, log: dict[str, Any]) -> None:
    """Replace only the log of the saved state: the model in memory is now the valid-best one the test
    loaded, not the last epoch's, so the training state on disk must stay as the last epoch wrote it."""
    import torch
    blob = torch.load(state_dir / STATE_FILE, map_location="cpu", weights_only=False)
    blob["log"] = log
    tmp = state_dir / (STATE_FILE + ".tmp")
    torch.save(blob, tmp)
    os.replace(tmp, state_dir / STATE_FILE)
    _write_progress(state_dir, log)


def _write_progress(state_dir: Path, log: dict[str, Any]) -> None:
    tmp = state_dir / (PROGRESS_FILE + ".tmp")
    tmp.write_text(json.dumps(_summary(log), indent=1) + "\n")
    os.replace(tmp, state_dir / PROGRESS_FILE)


def _summary(log: dict[str, Any]) -> dict[str, Any]:
    """The run so far: valid curve, best epoch, cumulative seconds (a readable progress.json)."""
    curve = log["valid_ndcg10_curve"]
    epochs = log["epochs"]
    first_setup = log["segments"][0]["setup"]
    return {**log["identity"], "finished": log["finished"], "early_stopped": log.get("early_stopped"),
            "epochs_done": log["epochs_done"], "cur_step": log["cur_step"],
            "best_epoch": curve.index(max(curve)) + 1 if curve else None,
            "best_valid_ndcg10": max(curve) if curve else None, "valid_ndcg10_curve": curve,
            "run_wall_seconds_so_far": round(first_setup[0] + sum(e["fit"][0] for e in epochs), 1),
            "run_cpu_seconds_so_far": round(first_setup[1] + sum(e["fit"][1] for e in epochs), 1),
            "segments": log["segments"], "partial_test": log.get("partial_test"),
            "last_epoch": epochs[-1] if epochs else None}


def _build(args: argparse.Namespace, checkpoint_dir: str):
    """RecBole's quick-start steps up to the trainer (``recbole.quick_start`` itself imports ray, whose
    release breaks on numpy 2 at import, so the same steps run through RecBole's documented API)."""
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    data = Path(args.data).resolve()
    if data.name != args.name:
        raise SystemExit(f"--data must be the folder named {args.name} (RecBole reads <folder>/<name>.inter)")
    cfg = {
        "data_path": str(data.parent), "dataset": data.name,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"},
        "metrics": ["Recall", "NDCG"], "topk": [10, 20], "valid_metric": "NDCG@10",
        "train_neg_sample_args": None, "seed": args.seed, "reproducibility": True,
        "checkpoint_dir": checkpoint_dir, "show_progress": False, "worker": 0,
    }
    if args.epochs:
        cfg["epochs"] = args.epochs
    config = Config(model=args.model, dataset=args.name, config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    if trainer.eval_step != 1:
        raise SystemExit("the per-epoch state assumes validation after every epoch (eval_step 1)")
    return config, trainer, train_data, valid_data, test_data


def _restore(state_dir: Path, trainer: Any, loaders: dict[str, Any], identity: dict[str, Any]) -> dict[str, Any]:
    import torch
    path = state_dir / STATE_FILE
    if not path.exists():
        raise SystemExit(f"--resume: no saved state at {path}; start the run without --resume")
    blob = torch.load(path, map_location="cpu", weights_only=False)
    log = blob["log"]
    if log["identity"] != identity:
        raise SystemExit(f"--resume: {path} holds the run {log['identity']}, not {identity}; "
                         "use the same --data/--name/--model/--seed/--epochs or another --state")
    trainer.model.load_state_dict(blob["state_dict"])
    trainer.model.load_other_parameter(blob["other_parameter"])
    trainer.optimizer.load_state_dict(blob["optimizer"])
    trainer.start_epoch = blob["epoch"] + 1
    trainer.cur_step = blob["cur_step"]
    trainer.best_valid_score = blob["best_valid_score"]
    trainer.best_valid_result = blob["best_valid_result"]
    trainer.train_loss_dict = blob["train_loss_dict"]
    _set_rng_state(blob["rng"], loaders)  # last: building the data and model above drew from the RNGs
    return log


def _hook_epochs(trainer: Any, args: argparse.Namespace, state_dir: Path | None, loaders: dict[str, Any],
                 log: dict[str, Any], t_start: tuple[float, float]) -> dict[str, Any]:
    """Time each epoch, log its valid score, save the state after it, and stop when this process's
    budget says so (``_Stop``, raised from RecBole's end-of-epoch callback)."""
    clocks: dict[str, list[list[float]]] = {"train": [], "valid": []}
    trainer._train_epoch = _timed(trainer._train_epoch, clocks["train"])
    trainer._valid_epoch = _timed(trainer._valid_epoch, clocks["valid"])
    seg = log["segments"][-1]
    mark = {"t": None, "trained_here": 0, "stop": None}

    def fit_started() -> None:
        mark["t"] = _clock()

    def callback(epoch_idx: int, valid_score: float) -> None:
        fit = _since(mark["t"])
        log["epochs"].append({"epoch": epoch_idx + 1, "fit": fit, "train": clocks["train"][-1],
                              "valid": clocks["valid"][-1], "loadavg": os.getloadavg()})
        log["valid_ndcg10_curve"].append(round(float(valid_score), 4))
        log["epochs_done"] = epoch_idx + 1
        log["cur_step"] = trainer.cur_step
        mark["trained_here"] += 1
        if state_dir is not None:
            t0 = _clock()
            _save_state(state_dir, trainer, loaders, log)
            seg["state_saving"] = [a + b for a, b in zip(seg["state_saving"], _since(t0))]
        stopping = trainer.cur_step > trainer.stopping_step or epoch_idx + 1 >= trainer.epochs
        if not stopping:
            elapsed = time.perf_counter() - t_start[0]
            if args.wall_limit is not None and elapsed + fit[0] > args.wall_limit:
                mark["stop"] = f"wall limit {args.wall_limit:.0f} s (elapsed {elapsed:.0f} s, last epoch {fit[0]:.0f} s)"
            elif args.stop_after is not None and mark["trained_here"] >= args.stop_after:
                mark["stop"] = f"--stop-after {args.stop_after}"
            elif state_dir is not None and (state_dir / STOP_FILE).exists():
                mark["stop"] = f"{state_dir / STOP_FILE} exists"
            if mark["stop"]:
                raise _Stop
        mark["t"] = _clock()

    mark["fit_started"] = fit_started
    mark["callback"] = callback
    return mark


def main() -> None:
    args = _parse()
    t_start = _clock()
    import torch
    torch.set_num_threads(1)

    state_dir = Path(args.state).resolve() if args.state else None
    if state_dir is not None:
        state_dir.mkdir(parents=True, exist_ok=True)
        if not args.resume and (state_dir / STATE_FILE).exists():
            raise SystemExit(f"{state_dir / STATE_FILE} exists: pass --resume to continue that run, "
                             "or give another --state to start afresh")
        (state_dir / STOP_FILE).unlink(missing_ok=True)
    checkpoint_dir = str(state_dir) if state_dir else f"/tmp/seq/recbole_saved/{args.model}_{args.seed}"
    config, trainer, train_data, valid_data, test_data = _build(args, checkpoint_dir)
    if state_dir is not None:
        trainer.saved_model_file = str(state_dir / BEST_FILE)
    loaders = {"train": train_data, "valid": valid_data, "test": test_data}
    identity = _identity(args)
    if args.resume:
        log = _restore(state_dir, trainer, loaders, identity)
        if log["finished"]:
            raise SystemExit(f"the run in {state_dir} has finished (row in its --out); nothing to resume")
    else:
        log = {"identity": identity, "epochs": [], "valid_ndcg10_curve": [], "epochs_done": 0,
               "cur_step": 0, "segments": [], "finished": False}
    log["segments"].append({"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "resumed_at_epoch": log["epochs_done"], "setup": _since(t_start),
                            "state_saving": [0.0, 0.0], "pid": os.getpid(),
                            "loadavg_start": os.getloadavg()})
    mark = _hook_epochs(trainer, args, state_dir, loaders, log, t_start)
    mark["fit_started"]()
    stopped = False
    try:
        trainer.fit(train_data, valid_data, saved=True, show_progress=False, callback_fn=mark["callback"])
    except _Stop:
        stopped = True
    t_test = _clock()
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    test = {k: float(v) for k, v in test.items()}
    test_clock = _since(t_test)
    seg = log["segments"][-1]
    seg.update({"ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_end": os.getloadavg(),
                "epochs_trained": mark["trained_here"], "stopped_by": mark["stop"], "process": _since(t_start)})
    if stopped:
        log["partial_test"] = {"after_epochs": log["epochs_done"], "test": test, "seconds": test_clock}
        if state_dir is not None:
            _update_log(state_dir, log)
        print(json.dumps({"stopped": mark["stop"], **_summary(log)}))
        return
    log["finished"] = True
    log["early_stopped"] = log["epochs_done"] < config["epochs"]
    if state_dir is not None:
        _update_log(state_dir, log)
    print(json.dumps(_row(args, config, trainer, train_data, log, test, test_clock)))


def _row(args: argparse.Namespace, config: Any, trainer: Any, train_data: Any, log: dict[str, Any],
         test: dict[str, float], test_clock: list[float]) -> dict[str, Any]:
    import torch
    summary = _summary(log)
    epochs, segs = log["epochs"], log["segments"]
    overhead = [sum(s["setup"][i] for s in segs[1:]) + sum(s["state_saving"][i] for s in segs) for i in (0, 1)]
    row = {"system": "recbole-1.2.1", "model": args.model, "seed": args.seed, "epochs_cap": args.epochs,
           "n_train_samples": len(train_data.dataset),
           "best_valid": {k: float(v) for k, v in trainer.best_valid_result.items()}, "test": test,
           "wall_seconds": round(summary["run_wall_seconds_so_far"] + test_clock[0], 1),
           "cpu_seconds": round(summary["run_cpu_seconds_so_far"] + test_clock[1], 1),
           "loadavg_end": os.getloadavg(), "epochs_run": log["epochs_done"], "best_epoch": summary["best_epoch"],
           "early_stopped": log["early_stopped"], "stopping_step": config["stopping_step"],
           "setup_seconds": segs[0]["setup"], "test_seconds": test_clock,
           "train_epoch_cpu_seconds": [e["train"][1] for e in epochs],
           "train_epoch_wall_seconds": [e["train"][0] for e in epochs],
           "valid_cpu_seconds": [e["valid"][1] for e in epochs],
           "epoch_fit_seconds": [e["fit"] for e in epochs],
           "epoch_loadavg_1min": [round(e["loadavg"][0], 1) for e in epochs],
           "valid_ndcg10_curve": log["valid_ndcg10_curve"],
           "processes": len(segs), "resume_overhead": [round(x, 1) for x in overhead],
           "segments": [{k: s.get(k) for k in ("started", "ended", "resumed_at_epoch", "epochs_trained",
                                               "stopped_by", "loadavg_start", "loadavg_end")} for s in segs],
           "state": args.state, "threads": torch.get_num_threads(), "python": platform.python_version(),
           "torch": torch.__version__}
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")
    return row


if __name__ == "__main__":
    main()
