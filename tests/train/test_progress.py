"""What training prints: one line per epoch off a terminal, a bar on one, nothing when quiet."""
from __future__ import annotations

import re

import pytest

from fusionrec import output
from fusionrec.evaluate import Evaluator
from fusionrec.models.registry import build_model
from fusionrec.train import Trainer
from tests.train.synthetic import clustered_dataset
from tests.train.test_trainer import Climber, PeakEvaluator, _cfg, _tiny_data

EPOCH_LINE = re.compile(r"^\[climber\] epoch (\d+)/30  loss -?\d+\.\d{4}  valid recall@20 -?\d+\.\d{4}( \*)?  "
                        r"\d+\.\d{2}s \(\+\d+\.\d{2}s valid\)$")


@pytest.fixture(autouse=True)
def normal_output():
    output.configure()
    yield
    output.configure()


def _fit(**cfg) -> None:
    Trainer(Climber(_tiny_data()), _tiny_data(), _cfg(**{"progress": True, **cfg}), PeakEvaluator(peak=5.0)).fit()


def test_one_line_per_epoch_when_stderr_is_not_a_terminal(capsys):
    _fit()
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    epochs = [EPOCH_LINE.match(line) for line in lines[:-1]]
    assert all(epochs), lines
    assert [int(m.group(1)) for m in epochs] == list(range(1, 9))
    # the climb improves the metric for 5 epochs (marked *), then 3 evaluations without improvement
    assert [bool(m.group(2)) for m in epochs] == [True] * 5 + [False] * 3
    assert lines[-1] == "[climber] stopped early at epoch 8: no valid improvement in 3 evaluations; best epoch 5"
    assert "\r" not in err


def test_quiet_and_progress_off_print_nothing(capsys):
    output.configure(quiet=True)
    _fit()
    assert capsys.readouterr().err == ""
    output.configure()
    _fit(progress=False)
    assert capsys.readouterr().err == ""


def test_a_terminal_gets_the_bar_and_verbose_keeps_the_lines(capsys, monkeypatch):
    monkeypatch.setattr(output, "_isatty", lambda stream: True)
    _fit()
    err = capsys.readouterr().err
    assert "train climber" in err and not re.search(r"^\[climber\] epoch", err, re.MULTILINE)
    output.configure(verbose=1)
    _fit()
    err = capsys.readouterr().err
    # tqdm.write clears the bar line first, so each kept line follows a carriage return
    assert len(re.findall(r"\[climber\] epoch \d+/30  loss", err)) == 8
    # a closed-form fit has no epochs: its one line, no bar
    ds = clustered_dataset(n_users=40, n_items=30, per_user=6, seed=2)
    Trainer(build_model("itemknn", ds.train_data()), ds.train_data(), _cfg(progress=True)).fit()
    assert re.fullmatch(r"\[itemknn\] fitted in \d+\.\d{2}s\n", capsys.readouterr().err)


def test_epochs_without_validation_and_closed_form_models(capsys):
    Trainer(Climber(_tiny_data()), _tiny_data(), _cfg(epochs=2, progress=True), evaluator=None).fit()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and all(re.match(r"^\[climber\] epoch \d/2  loss -?\d+\.\d{4}  \d+\.\d{2}s$", x)
                                   for x in lines), lines
    ds = clustered_dataset(n_users=40, n_items=30, per_user=6, seed=2)
    model = build_model("itemknn", ds.train_data())
    Trainer(model, ds.train_data(), _cfg(progress=True), Evaluator(ds, ks=(20,))).fit()
    assert re.fullmatch(r"\[itemknn\] fitted in \d+\.\d{2}s  valid recall@20 \d\.\d{4}\n", capsys.readouterr().err)
