"""Progress that people can follow in a log: plain lines off a terminal, a bar on one, nothing with -q."""
from __future__ import annotations

import io
import sys

import pytest

from fusionrec import output


@pytest.fixture(autouse=True)
def normal_verbosity():
    output.configure(0, False)
    yield
    output.configure(0, False)


def test_lines_off_a_terminal(monkeypatch):
    err = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stderr", err)
    bar = output.progress_bar(100, "encode text (minilm)", "item")
    assert isinstance(bar, output.LineProgress)
    for _ in range(4):
        bar.update(25)
    bar.close()
    lines = err.getvalue().splitlines()
    assert lines == [lines[0]] and lines[0].startswith("encode text (minilm): 100/100 item (100%)")
    assert "\r" not in err.getvalue()


def test_lines_at_most_every_interval(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    clock = iter([0.0, 3.0, 11.0, 12.0, 30.0])
    monkeypatch.setattr(output.time, "perf_counter", lambda: next(clock))
    bar = output.LineProgress(10, "work", every_s=10.0)   # start at t=0
    bar.update(1)   # t=3: too soon
    bar.update(1)   # t=11: a line
    bar.update(1)   # t=12: too soon
    bar.close()     # t=30: the closing line
    assert [line.split(":")[1].split(",")[0].strip() for line in err.getvalue().splitlines()] == [
        "2/10 item (20%)", "3/10 item (30%)"]


def test_quiet_or_disabled_prints_nothing(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    output.configure(0, quiet=True)
    bar = output.progress_bar(5, "encode", "item")
    bar.update(5)
    bar.close()
    output.configure(0, False)
    off = output.progress_bar(5, "encode", "item", enabled=False)
    off.update(5)
    off.close()
    assert err.getvalue() == ""
