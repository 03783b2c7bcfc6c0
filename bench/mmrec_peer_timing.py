"""One MMRec run, timed: process CPU and wall seconds, per training epoch and whole (issue 13, acceptance 5).

Runs MMRec's own ``quick_start`` for one model and one hyper-parameter point with torch on one
thread, and records, besides MMRec's own log:

* one JSON line per training epoch (``OUT.epochs``): CPU and wall seconds of the epoch, CPU seconds
  so far, the best valid score and MMRec's early-stopping counter; written as the run goes, so a run
  stopped early still bounds what the whole run costs;
* one JSON line for the whole run (``OUT``): CPU / wall seconds, how many evaluations, the seconds of
  its valid passes and of its test passes (MMRec tests after every validation), valid and test
  metrics at the valid-best epoch, and the machine's load.

MMRec is never part of this repository. Setup, in a scratch folder (the patches are the CPU fixes the
issue lists; nothing in a model's computation changes)::

    git clone https://github.com/enoche/MMRec /tmp/mmrec/MMRec
    # utils/dataset.py: drop the image-loading imports (utils.data_utils needs torchvision, lmdb)
    # utils/metrics.py: np.float -> np.float64
    # models/smore.py: image_adj.cuda() / text_adj.cuda() -> .to(self.device)
    # utils/utils.py: torch_scatter.scatter_add -> torch.zeros(n).index_add_(0, index, src)
    # configs/dataset/{ml100k,lastfm2k}.yaml: USER_ID_FIELD userID, ITEM_ID_FIELD itemID,
    #   inter_file_name '<name>.inter', vision_feature_file image_feat.npy, text_feature_file text_feat.npy
    # /tmp/mmrec/data/ml100k: ../shared/data/ml100k/mmrec/{ml100k.inter,image_feat.npy,text_feat.npy}
    # /tmp/mmrec/data/lastfm2k: lfm2k.inter as lastfm2k.inter, vggish.npy as image_feat.npy,
    #   all-MiniLM-L6-v2.npy as text_feat.npy (the modalities of fusionrec's lastfm2k mmgraph)

    S='n_ui_layers=[3] image_knn_k=[10] text_knn_k=[10] reg_weight=[0.00001] dropout_rate=[0]'
    H='hyper_parameters=["n_ui_layers","image_knn_k","text_knn_k","reg_weight","dropout_rate"]'
    OMP_NUM_THREADS=1 python bench/mmrec_peer_timing.py --mmrec /tmp/mmrec/MMRec --data /tmp/mmrec/data/ \\
        --dataset lastfm2k --set $S "$H" stopping_step=50 --out /tmp/mmrec/smore.jsonl

``--set`` values are YAML (write 1e-5 as 0.00001: YAML 1.1 reads ``1e-5`` as a string); the keys
named in ``hyper_parameters`` take lists, as in MMRec's model files.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any


def _patch_trainer(trainer_module: Any, out: Path, tag: dict[str, Any], cost: dict[str, float],
                   best: dict[str, Any]) -> None:
    """Wrap MMRec's Trainer so that every epoch and every evaluation is timed."""
    orig_valid, orig_train, orig_fit = (trainer_module.Trainer._valid_epoch, trainer_module.Trainer._train_epoch,
                                        trainer_module.Trainer.fit)
    epoch_log = out.with_name(out.name + ".epochs").open("a")

    def valid_epoch(self: Any, data: Any) -> Any:
        start = time.perf_counter()
        result = orig_valid(self, data)
        # MMRec calls it twice an evaluation: valid, then test
        cost["valid_s" if cost["calls"] % 2 == 0 else "test_s"] += time.perf_counter() - start
        cost["calls"] += 1
        return result

    def train_epoch(self: Any, data: Any, idx: int, *rest: Any, **kw: Any) -> Any:
        cpu, wall = time.process_time(), time.perf_counter()
        result = orig_train(self, data, idx, *rest, **kw)
        epoch_log.write(json.dumps({
            **tag, "epoch": idx, "train_cpu_s": round(time.process_time() - cpu, 2),
            "train_wall_s": round(time.perf_counter() - wall, 2), "cpu_so_far": round(time.process_time(), 1),
            "best_valid": float(getattr(self, "best_valid_score", -1)), "cur_step": self.cur_step}) + "\n")
        epoch_log.flush()
        return result

    def fit(self: Any, *args: Any, **kw: Any) -> Any:
        result = orig_fit(self, *args, **kw)
        best["valid"], best["test"] = result[1], result[2]
        return result

    trainer_module.Trainer._valid_epoch = valid_epoch
    trainer_module.Trainer._train_epoch = train_epoch
    trainer_module.Trainer.fit = fit


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mmrec", required=True, help="the MMRec checkout (its src/ is imported)")
    ap.add_argument("--data", required=True, help="MMRec's data_path: a folder with one folder per dataset")
    ap.add_argument("--model", default="SMORE")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--seed", type=int, default=999, help="MMRec's default seed")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=YAML", help="MMRec config overrides")
    ap.add_argument("--out", required=True, help="JSON lines: the whole run here, its epochs in OUT.epochs")
    args = ap.parse_args(argv)

    import torch
    import yaml

    torch.set_num_threads(1)
    src = Path(args.mmrec).resolve() / "src"
    out = Path(args.out).resolve()
    sys.path.insert(0, str(src))
    os.chdir(src)   # MMRec reads its configs relative to the working directory
    overrides: dict[str, Any] = {"use_gpu": False, "seed": [args.seed], "data_path": str(Path(args.data).resolve()) + "/",
                                 "save_recommended_topk": False}
    for item in args.set:
        key, value = item.split("=", 1)
        overrides[key] = yaml.safe_load(value)

    from common import trainer as trainer_module
    from utils.quick_start import quick_start

    tag = {"model": args.model, "dataset": args.dataset, "seed": args.seed}
    cost = {"valid_s": 0.0, "test_s": 0.0, "calls": 0}
    best: dict[str, Any] = {}
    _patch_trainer(trainer_module, out, tag, cost, best)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    quick_start(model=args.model, dataset=args.dataset, config_dict=overrides, save_model=False)
    record = {
        **tag, "set": args.set, "wall_s": round(time.perf_counter() - wall0, 1),
        "cpu_s": round(time.process_time() - cpu0, 1), "evals": int(cost["calls"]) // 2,
        "valid_s": round(cost["valid_s"], 1), "test_s": round(cost["test_s"], 1),
        "valid": {k: float(v) for k, v in (best.get("valid") or {}).items()},
        "test": {k: float(v) for k, v in (best.get("test") or {}).items()},
        "load_end": os.getloadavg(), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    with out.open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
