"""What fusionrec prints, and how much: the verbosity of the whole process.

Every command accepts ``-v/--verbose`` (repeatable) and ``-q/--quiet`` anywhere on
its command line (``fusionrec -v train ...`` or ``fusionrec train ... -q``); the CLI
calls :func:`configure` once, and every stage asks this module instead of deciding
for itself:

* ``quiet``   (-q): nothing but errors and the final result table;
* ``normal``  (default): progress -- a tqdm bar when stderr is a terminal, one plain
  line per step (per epoch) when it is not (CI, log files, pipes), where a bar
  would be a wall of carriage returns;
* ``verbose`` (-v): also fusionrec's INFO log messages; ``-vv`` adds DEBUG.

Progress and messages go to stderr so stdout carries only results (tables, JSON)
and can be piped.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any, Literal

QUIET, NORMAL, VERBOSE, DEBUG = -1, 0, 1, 2
ProgressMode = Literal["bar", "lines", "none"]

_level = NORMAL
_LOG_LEVELS = {QUIET: logging.ERROR, NORMAL: logging.WARNING, VERBOSE: logging.INFO, DEBUG: logging.DEBUG}


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at emit time (so redirection and capture work)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            print(self.format(record), file=sys.stderr, flush=True)
        except Exception:  # noqa: BLE001 - logging must never raise into the caller
            self.handleError(record)


_handler = _StderrHandler()
_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def configure(verbose: int = 0, quiet: bool = False) -> int:
    """Set the process verbosity from the CLI flags and apply it to fusionrec's loggers.

    ``quiet`` wins over ``verbose`` (a script asking for silence gets it). Returns the level.
    """
    global _level
    if quiet:
        _level = QUIET
    else:
        _level = min(max(int(verbose or 0), 0), DEBUG)
    logger = logging.getLogger("fusionrec")
    logger.setLevel(_LOG_LEVELS[_level])
    if _handler not in logger.handlers:
        logger.addHandler(_handler)
    return _level


def level() -> int:
    """The current verbosity: :data:`QUIET`, :data:`NORMAL`, :data:`VERBOSE` or :data:`DEBUG`."""
    return _level


def is_quiet() -> bool:
    return _level <= QUIET


def is_verbose() -> bool:
    return _level >= VERBOSE


def progress_mode(enabled: bool = True) -> ProgressMode:
    """How to show progress now: ``"bar"`` on a terminal, ``"lines"`` elsewhere, ``"none"``
    when quiet or when the caller's own setting (e.g. ``train.progress``) turns it off."""
    if not enabled or is_quiet():
        return "none"
    return "bar" if _isatty(sys.stderr) else "lines"


def progress_enabled() -> bool:
    """Whether tqdm bars should be shown (a terminal, and not quiet)."""
    return progress_mode() == "bar"


def info(message: str) -> None:
    """A message for people following the run (stderr); silent with ``-q``."""
    if not is_quiet():
        print(message, file=sys.stderr, flush=True)


def detail(message: str) -> None:
    """A message shown only with ``-v`` (stderr)."""
    if is_verbose():
        print(message, file=sys.stderr, flush=True)


def add_output_arguments(parser: argparse.ArgumentParser, top_level: bool = False) -> None:
    """Add ``-v/--verbose`` and ``-q/--quiet`` to ``parser`` (skipped if it has them already).

    On subcommand parsers the defaults are suppressed, so a flag given before the
    subcommand (``fusionrec -q train``) is not reset by the subcommand's default.
    """
    if "-v" in parser._option_string_actions or "--verbose" in parser._option_string_actions:
        return
    default_v = 0 if top_level else argparse.SUPPRESS
    default_q = False if top_level else argparse.SUPPRESS
    parser.add_argument("-v", "--verbose", action="count", default=default_v,
                        help="more output: -v adds info messages, -vv debug messages")
    parser.add_argument("-q", "--quiet", action="store_true", default=default_q,
                        help="print nothing but errors and the final result")


class LineProgress:
    """Progress as plain lines (``encode text (minilm): 512/1000 item (51%), 12 s``) for logs and pipes.

    The tqdm-compatible subset fusionrec uses (``update``, ``close``): a line at most every
    ``every_s`` seconds and one at the end, instead of a bar's carriage returns.
    """

    def __init__(self, total: int, desc: str, unit: str = "item", every_s: float = 10.0) -> None:
        self.total, self.desc, self.unit, self.every_s = int(total), desc, unit, float(every_s)
        self.n = 0
        self._start = self._last = time.perf_counter()
        self._done = False

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        now = time.perf_counter()
        if now - self._last >= self.every_s or (self.total and self.n >= self.total):
            self._line(now)

    def close(self) -> None:
        if not self._done:
            self._line(time.perf_counter())

    def _line(self, now: float) -> None:
        share = f" ({self.n / self.total:.0%})" if self.total else ""
        print(f"{self.desc}: {self.n}/{self.total} {self.unit}{share}, {now - self._start:.0f} s",
              file=sys.stderr, flush=True)
        self._last = now
        self._done = bool(self.total) and self.n >= self.total


def progress_bar(total: int, desc: str, unit: str = "item", enabled: bool = True) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` elsewhere, a silent tqdm when quiet or disabled."""
    from tqdm.auto import tqdm

    mode = progress_mode(enabled)
    if mode == "lines":
        return LineProgress(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=mode == "none", dynamic_ncols=True)


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


__all__ = [
    "DEBUG",
    "NORMAL",
    "QUIET",
    "VERBOSE",
    "LineProgress",
    "add_output_arguments",
    "configure",
    "detail",
    "info",
    "is_quiet",
    "is_verbose",
    "level",
    "progress_bar",
    "progress_enabled",
    "progress_mode",
]
