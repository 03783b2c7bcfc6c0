"""What the trainer shows while it runs (see :mod:`fusionrec.output` for the verbosity).

* on a terminal: a tqdm bar (one tick per epoch, loss and the latest valid metric);
  with ``-v`` each epoch's line is also kept above the bar;
* elsewhere (CI, log files, pipes): one plain line per epoch on stderr, e.g.
  ``[bpr] epoch 3/50  loss 0.4123  valid recall@20 0.1234 *  1.20s (+0.31s valid)``
  where ``*`` marks a new best; ``-q`` or ``train.progress: false`` print nothing.
"""
from __future__ import annotations

import logging
import math
import sys
from typing import Any

from tqdm.auto import tqdm

from fusionrec import output
from fusionrec.config import TrainConfig

log = logging.getLogger(__name__)


class EpochProgress:
    """Reports epochs of one training run as a bar or as lines (chosen once, at construction)."""

    def __init__(self, model_name: str, cfg: TrainConfig, initial: int = 0, epochs: bool = True) -> None:
        self.name = model_name
        self.cfg = cfg
        self.mode = output.progress_mode(cfg.progress)
        self._last_valid = "-"  # the bar keeps showing the latest valid metric between evaluations
        # a closed-form fit (``epochs=False``) has no epochs to count: no bar, just its line
        self._bar = tqdm(total=cfg.epochs, initial=initial, desc=f"train {model_name}", unit="epoch",
                         disable=self.mode != "bar" or not epochs, dynamic_ncols=True, leave=False,
                         file=sys.stderr)

    def epoch(self, record: dict[str, Any], score: float | None, improved: bool) -> None:
        """Report one finished epoch (``record`` as kept in the training history)."""
        line = self.epoch_line(record, score, improved)
        log.debug(line)
        if score is not None:
            self._last_valid = f"{score:.4f}"
        if self.mode == "lines":
            print(line, file=sys.stderr, flush=True)
        elif self.mode == "bar":
            if output.is_verbose():
                self._bar.write(line, file=sys.stderr)
            self._bar.update(1)
            self._bar.set_postfix({"loss": f"{record['loss']:.4f}", self.cfg.valid_metric: self._last_valid})

    def epoch_line(self, record: dict[str, Any], score: float | None, improved: bool) -> str:
        loss = record["loss"]
        parts = [f"[{self.name}] epoch {record['epoch']}/{self.cfg.epochs}",
                 f"loss {loss:.4f}" if math.isfinite(loss) else "loss diverged (keeping the best weights so far)"]
        if score is not None:
            parts.append(f"valid {self.cfg.valid_metric} {score:.4f}{' *' if improved else ''}")
        seconds = f"{record['seconds']:.2f}s"
        if "valid_seconds" in record:
            seconds += f" (+{record['valid_seconds']:.2f}s valid)"
        parts.append(seconds)
        return "  ".join(parts)

    def stopped(self, state: dict[str, Any]) -> None:
        """Say why training ended before ``epochs`` (no improvement, a diverged loss, or the deadline)."""
        if state["history"] and state["history"][-1].get("diverged"):
            reason = "the loss diverged"
        elif state["history"] and state["history"][-1].get("stopped_at_deadline"):
            reason = "its time budget ran out (Trainer deadline)"
        else:
            reason = f"no valid improvement in {self.cfg.patience} evaluations"
        best = f"; best epoch {state['best_epoch']}" if state["best_epoch"] else ""
        self._say(f"[{self.name}] stopped early at epoch {state['epoch']}: {reason}{best}")

    def fitted(self, seconds: float, score: float | None) -> None:
        """Report a closed-form fit (one step, no epochs)."""
        valid = f"  valid {self.cfg.valid_metric} {score:.4f}" if score is not None else ""
        self._say(f"[{self.name}] fitted in {seconds:.2f}s{valid}")

    def close(self) -> None:
        self._bar.close()

    def _say(self, line: str) -> None:
        log.debug(line)
        if self.mode != "none":
            print(line, file=sys.stderr, flush=True)
