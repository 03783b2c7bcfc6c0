"""train.ema_decay: the trainer validates, chooses and returns the moving average of the weights."""
from __future__ import annotations

import pytest

from fusionrec.train import Trainer
from tests.train.test_trainer import Climber, PeakEvaluator, _cfg, _tiny_data


def _ema_path(decay: float, steps: int) -> list[float]:
    """EMA of the climber's weight (w = step number after each one-step epoch); the first update copies."""
    out, ema = [], 0.0
    for step in range(1, steps + 1):
        ema = float(step) if step == 1 else decay * ema + (1 - decay) * step
        out.append(ema)
    return out


def test_ema_weights_are_validated_chosen_and_returned_while_training_continues_from_the_raw_ones():
    model = Climber(_tiny_data())
    ev = PeakEvaluator(peak=5.0)
    result = Trainer(model, _tiny_data(), _cfg(ema_decay=0.5), ev).fit()
    expected = _ema_path(0.5, len(result.history))
    # every validation saw the average; the raw weight kept climbing by one a step underneath
    assert [w for _, w in ev.calls] == pytest.approx(expected, abs=1e-4)
    best = min(range(len(expected)), key=lambda i: abs(expected[i] - 5.0))
    assert result.best_epoch == best + 1
    assert float(model.w.detach()) == pytest.approx(expected[best], abs=1e-4)


def test_ema_without_validation_returns_the_average_and_survives_resume(tmp_path):
    full = Climber(_tiny_data())
    Trainer(full, _tiny_data(), _cfg(epochs=6, ema_decay=0.8), None).fit()
    assert float(full.w.detach()) == pytest.approx(_ema_path(0.8, 6)[-1], abs=1e-4)
    first = Climber(_tiny_data())
    Trainer(first, _tiny_data(), _cfg(epochs=3, ema_decay=0.8, checkpoint=True), None, out_dir=tmp_path).fit()
    resumed = Climber(_tiny_data())
    Trainer(resumed, _tiny_data(), _cfg(epochs=6, ema_decay=0.8, checkpoint=True, resume=True), None,
            out_dir=tmp_path).fit()
    assert float(resumed.w.detach()) == pytest.approx(float(full.w.detach()), abs=1e-4)
