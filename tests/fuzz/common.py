"""Shared parts of the fuzz suite: settings, mutations of files, and the no-traceback oracle.

``FUSIONREC_FUZZ_EXAMPLES`` is the number of generated cases in all, shared evenly among
the fuzz tests (default 400: well under 90 s on the CI machine). A long run:

    FUSIONREC_FUZZ_EXAMPLES=20000 python -m pytest -q tests/fuzz

The CI run is derandomized (the same cases every time, so a failure reproduces);
``FUSIONREC_FUZZ_SEED=random`` draws new cases on every run. No example database is
written (the tree is shared): a failure prints the falsifying example instead.
"""
from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

# fuzz test functions in tests/fuzz/test_*.py: each gets an equal share of the cases
N_FUZZ_TESTS = 7
DEFAULT_EXAMPLES = 400


def examples_per_test() -> int:
    raw = os.environ.get("FUSIONREC_FUZZ_EXAMPLES", "").strip()
    try:
        total = int(raw) if raw else DEFAULT_EXAMPLES
    except ValueError:
        raise ValueError(f"FUSIONREC_FUZZ_EXAMPLES must be a whole number of cases, got {raw!r}") from None
    return max(1, math.ceil(total / N_FUZZ_TESTS))


FUZZ = settings(
    max_examples=examples_per_test(),
    deadline=None,  # a shared 2-core machine: wall times vary too much for per-example deadlines
    derandomize=os.environ.get("FUSIONREC_FUZZ_SEED", "") != "random",
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                           HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
    print_blob=True,
)

# ---------------------------------------------------------------------- values a table cell may hold
ODD_TEXT = [
    "", " ", "nan", "NaN", "inf", "-inf", "1e309", "-1e400", "1e-400", "9" * 400, "-0", " 5 ", "0x1F", "1_000",
    "true", "None", "NULL", "[]", "{}", '"', '""', '"a,b"', "a,b", "\t", "\\", "\x00", "\r", "\n", "é", "ü" * 3,
    "\u202e", "😀", "१२३", "٣", "2024-13-45", "2024-02-30T25:00", "99999999999999999999999", "-5", "3.5",
    "../../etc/passwd", "/abs/path.jpg", "http://x/y.jpg", "images/" + "a" * 300 + ".jpg", "\ufeff", "x" * 5000,
]
ODD_JSON: list[Any] = [
    None, True, False, 0, -1, 10**400, -(10**30), 1e308, -1e308, 0.5, "", "nan", "inf", [], [1, [2, [3]]], {},
    {"a": {"b": None}}, "😀", "\u0000", "x" * 5000, "1e309", [None] * 3,
]
ENCODINGS = ["utf-16", "utf-16-le", "utf-32", "latin-1", "cp1252", "utf-8-sig", "shift_jis", "utf-7"]


def cell_text() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from(ODD_TEXT), st.text(max_size=12))


# ---------------------------------------------------------------------- byte-level mutations
@st.composite
def mutate_bytes(draw: st.DrawFn, data: bytes) -> bytes:
    """One damaging edit of a file's bytes: flips, truncation, insertion, deletion, emptiness, garbage."""
    kind = draw(st.sampled_from(["flip", "truncate", "insert", "delete", "empty", "garbage", "repeat", "zero"]))
    n = len(data)
    if kind == "empty" or n == 0:
        return b""
    if kind == "garbage":
        return draw(st.binary(min_size=1, max_size=256))
    pos = draw(st.integers(0, n - 1))
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            p = draw(st.integers(0, n - 1)) if draw(st.booleans()) else pos
            out[p] ^= 1 << draw(st.integers(0, 7))
        return bytes(out)
    if kind == "truncate":
        return data[:pos]
    if kind == "insert":
        return data[:pos] + draw(st.binary(min_size=1, max_size=64)) + data[pos:]
    if kind == "delete":
        return data[:pos] + data[pos + draw(st.integers(1, 64)):]
    if kind == "zero":
        end = min(n, pos + draw(st.integers(1, 256)))
        return data[:pos] + b"\0" * (end - pos) + data[end:]
    return data[:pos] + data[pos:] * draw(st.integers(2, 4))  # repeat


# ---------------------------------------------------------------------- text-level mutations (delimited files)
@st.composite
def mutate_delimited(draw: st.DrawFn, text: str, sep: str) -> bytes:
    """Edit a delimited file as text: odd cells, missing/extra columns, broken lines, other encodings."""
    lines = text.split("\n")
    kind = draw(st.sampled_from(["cell", "cells", "drop_column", "rename_column", "extra_field", "short_line",
                                 "quote", "encoding", "blank_lines", "header_only", "duplicate_header",
                                 "bytes"]))
    if kind == "bytes":
        return draw(mutate_bytes(text.encode()))
    if kind in ("cell", "cells"):
        for _ in range(1 if kind == "cell" else draw(st.integers(2, 8))):
            i = draw(st.integers(0, len(lines) - 1))
            fields = lines[i].split(sep)
            fields[draw(st.integers(0, len(fields) - 1))] = draw(cell_text())
            lines[i] = sep.join(fields)
    elif kind in ("drop_column", "rename_column"):
        k = draw(st.integers(0, max(0, len(lines[0].split(sep)) - 1)))
        every = draw(st.booleans())
        for i in range(len(lines) if (every and kind == "drop_column") else 1):
            fields = lines[i].split(sep)
            if k < len(fields):
                if kind == "drop_column":
                    fields.pop(k)
                else:
                    fields[k] = draw(st.sampled_from(["", "user_id", "item_id", "x:token", "a" * 200, "é"]))
            lines[i] = sep.join(fields)
    elif kind == "extra_field":
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] += sep + draw(cell_text())
    elif kind == "short_line":
        i = draw(st.integers(1, max(1, len(lines) - 1)))
        lines[i] = lines[i].split(sep)[0] if i < len(lines) else ""
    elif kind == "quote":
        i = draw(st.integers(0, len(lines) - 1))
        p = draw(st.integers(0, len(lines[i])))
        lines[i] = lines[i][:p] + '"' + lines[i][p:]
    elif kind == "blank_lines":
        i = draw(st.integers(0, len(lines)))
        lines[i:i] = ["", sep * draw(st.integers(0, 3)), "   "]
    elif kind == "header_only":
        lines = lines[:1]
    elif kind == "duplicate_header":
        lines.insert(draw(st.integers(1, len(lines))), lines[0])
    out = "\n".join(lines)
    if kind == "encoding":
        enc = draw(st.sampled_from(ENCODINGS))
        return out.encode(enc, errors="replace")
    return out.encode("utf-8", errors="surrogatepass")


@st.composite
def mutate_jsonl(draw: st.DrawFn, records: list[dict[str, Any]]) -> bytes:
    """Edit JSON lines: odd values and types, missing keys, non-object lines, broken JSON, byte damage."""
    recs = [dict(r) for r in records]
    kind = draw(st.sampled_from(["value", "values", "drop_key", "not_object", "broken", "bytes", "nested"]))
    if kind in ("value", "values", "nested"):
        for _ in range(1 if kind != "values" else draw(st.integers(2, 8))):
            r = recs[draw(st.integers(0, len(recs) - 1))]
            key = draw(st.sampled_from(sorted(r)))
            r[key] = draw(st.sampled_from(ODD_JSON)) if kind != "nested" else {"deep": [r.get(key)] * 3}
    elif kind == "drop_key":
        key = draw(st.sampled_from(sorted(recs[0])))
        for r in recs if draw(st.booleans()) else recs[:1]:
            r.pop(key, None)
    lines = [json.dumps(r) for r in recs]
    if kind == "not_object":
        lines[draw(st.integers(0, len(lines) - 1))] = draw(st.sampled_from(["[1, 2]", "3", '"x"', "null", "true"]))
    elif kind == "broken":
        i = draw(st.integers(0, len(lines) - 1))
        lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    data = "\n".join(lines).encode()
    return draw(mutate_bytes(data)) if kind == "bytes" else data


# ---------------------------------------------------------------------- the oracle
@contextlib.contextmanager
def no_unraisable() -> Iterator[list[str]]:
    """Collect exceptions that would be printed as 'Exception ignored in ...' (e.g. from parser callbacks)."""
    seen: list[str] = []
    previous = sys.unraisablehook
    sys.unraisablehook = lambda info: seen.append(f"{info.exc_type.__name__}: {info.exc_value} in {info.object!r}")
    try:
        yield seen
    finally:
        sys.unraisablehook = previous


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``fusionrec <argv>`` in this process: (exit code, stdout, stderr). Any exception but SystemExit escapes."""
    from fusionrec import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), no_unraisable() as unraisable:
        code = cli.main(argv)
    assert not unraisable, unraisable
    return code, out.getvalue(), err.getvalue()


def assert_clean_exit(code: int, err: str, allowed: tuple[int, ...] = (0, 2)) -> None:
    """Exit 0 (a report) or 2 with one located message: what, where, fix; never a traceback."""
    assert code in allowed, (code, err)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    if code == 2:
        assert err.startswith("error: ") and "\n  where: " in err and "\n  fix:   " in err, err


def user_error_or(fn: Callable[[], Any]) -> Any:
    """``fn()``'s value, or None when it raised a located UserError; any other exception fails the test."""
    from fusionrec.errors import UserError

    try:
        return fn()
    except UserError as err:
        assert err.what and err.where and err.fix, err.message
        return None
