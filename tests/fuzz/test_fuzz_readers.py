"""Readers and ``fusionrec data validate`` over mutated CSV / JSONL / Parquet / MMRec / RecBole folders.

Every case must end in a report (exit 0) or one located message (exit 2): never a traceback,
never an exception printed from inside a parser. See tests/fuzz/common.py for the budget.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import event, given
from hypothesis import strategies as st

from fusionrec.data.readers import read_mmrec, read_recbole, read_table
from fusionrec.data.validate import summarise
from tests.fuzz.common import (
    FUZZ,
    ODD_JSON,
    assert_clean_exit,
    cell_text,
    mutate_bytes,
    mutate_delimited,
    mutate_jsonl,
    run_cli,
    user_error_or,
)

N_USERS, N_ITEMS = 6, 8
ROWS = [(f"u{i % N_USERS}", f"i{(i * 3) % N_ITEMS}", float(1 + i % 5), 1_700_000_000 + 3600 * i) for i in range(30)]
ITEMS = [(f"i{j}", f"Item number {j}", 9.5 + j, ["red", "blue", "green"][j % 3]) for j in range(N_ITEMS)]


def _delimited(rows: list[tuple], header: list[str], sep: str) -> str:
    return "\n".join([sep.join(header)] + [sep.join(str(v) for v in r) for r in rows]) + "\n"


def _check(folder: Path, fmt: str, read: Any, json_out: bool) -> None:
    """The oracle: the CLI exits cleanly, and the reader returns a usable Dataset or raises a UserError.

    Every other case (``json_out``) also describes the folder (``data init``, which sniffs the
    files on its own) and validates it through that description (``data validate --data``).
    """
    argv = ["data", "validate", str(folder), "--format", fmt] + (["--json"] if json_out else [])
    code, _, err = run_cli(argv)
    assert_clean_exit(code, err)
    event(f"data validate exit {code}")
    if json_out:
        init, _, err = run_cli(["data", "init", str(folder), "--force", "-q"])
        assert_clean_exit(init, err)
        event(f"data init exit {init}")
        if init == 0:
            code, _, err = run_cli(["data", "validate", "--data", str(folder), "-q"])
            assert_clean_exit(code, err)
    dataset = user_error_or(lambda: read(folder))
    if dataset is not None:
        summarise(dataset)
        dataset.train_data()


@FUZZ
@given(data=st.data(), sep=st.sampled_from([",", "\t", ";"]), target=st.sampled_from(["inter", "items"]),
       json_out=st.booleans())
def test_csv_folders(data: st.DataObject, sep: str, target: str, json_out: bool) -> None:
    ext = "tsv" if sep == "\t" else "csv"
    inter = _delimited(ROWS, ["user_id", "item_id", "rating", "timestamp"], sep)
    items = _delimited(ITEMS, ["item_id", "title", "price", "genre"], sep)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        mutated = data.draw(mutate_delimited(inter if target == "inter" else items, sep))
        (folder / f"interactions.{ext}").write_bytes(mutated if target == "inter" else inter.encode())
        (folder / f"items.{ext}").write_bytes(mutated if target == "items" else items.encode())
        _check(folder, ext if ext == "csv" else "tsv", read_table, json_out)


@FUZZ
@given(data=st.data(), target=st.sampled_from(["inter", "items"]), json_out=st.booleans())
def test_jsonl_folders(data: st.DataObject, target: str, json_out: bool) -> None:
    inter = [{"user_id": u, "item_id": i, "rating": r, "timestamp": t} for u, i, r, t in ROWS]
    items = [{"item_id": i, "title": t, "price": p, "genre": g} for i, t, p, g in ITEMS]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        good = {"inter": inter, "items": items}
        for name, records in good.items():
            path = folder / ("interactions.jsonl" if name == "inter" else "items.jsonl")
            if name == target:
                path.write_bytes(data.draw(mutate_jsonl(records)))
            else:
                path.write_text("\n".join([json.dumps(r) for r in records]))
        _check(folder, "jsonl", read_table, json_out)


def _odd_column(draw: st.DrawFn, n: int) -> pa.Array:
    kind = draw(st.sampled_from(["bool", "list", "bytes", "int_huge", "float_odd", "date", "dict", "null",
                                 "struct", "text"]))
    if kind == "bool":
        return pa.array([draw(st.booleans()) for _ in range(n)])
    if kind == "list":
        return pa.array([[1, 2]] * n)
    if kind == "bytes":
        return pa.array([draw(st.binary(max_size=8)) for _ in range(n)])
    if kind == "int_huge":
        return pa.array([draw(st.sampled_from([2**63 - 1, -(2**63), 0, -1])) for _ in range(n)], pa.int64())
    if kind == "float_odd":
        return pa.array([draw(st.sampled_from([np.inf, -np.inf, np.nan, 1e308, -0.0])) for _ in range(n)])
    if kind == "date":
        return pa.array(pd.date_range("1677-09-22", periods=n, freq="D"))
    if kind == "dict":
        return pa.array([f"v{j % 2}" for j in range(n)]).dictionary_encode()
    if kind == "null":
        return pa.nulls(n)
    if kind == "struct":
        return pa.array([{"a": j} for j in range(n)])
    return pa.array([draw(cell_text()) for _ in range(n)])


@st.composite
def _parquet_bytes(draw: st.DrawFn, frame: pd.DataFrame) -> bytes:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    kind = draw(st.sampled_from(["retype", "drop", "rename", "bytes", "empty_rows"]))
    if kind == "retype":
        k = draw(st.integers(0, table.num_columns - 1))
        table = table.set_column(k, table.column_names[k], _odd_column(draw, table.num_rows))
    elif kind == "drop":
        table = table.remove_column(draw(st.integers(0, table.num_columns - 1)))
    elif kind == "rename":
        names = list(table.column_names)
        names[draw(st.integers(0, len(names) - 1))] = draw(st.sampled_from(["", "x", "item_id", "user_id", "é"]))
        if len(set(names)) == len(names):
            table = table.rename_columns(names)
    elif kind == "empty_rows":
        table = table.slice(0, 0)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    data = sink.getvalue().to_pybytes()
    return draw(mutate_bytes(data)) if kind == "bytes" else data


@FUZZ
@given(data=st.data(), target=st.sampled_from(["inter", "items"]), json_out=st.booleans())
def test_parquet_folders(data: st.DataObject, target: str, json_out: bool) -> None:
    inter = pd.DataFrame(ROWS, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame(ITEMS, columns=["item_id", "title", "price", "genre"])
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, frame in (("inter", inter), ("items", items)):
            path = folder / ("interactions.parquet" if name == "inter" else "items.parquet")
            if name == target:
                path.write_bytes(data.draw(_parquet_bytes(frame)))
            else:
                frame.to_parquet(path, index=False)
        _check(folder, "parquet", read_table, json_out)


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


@st.composite
def _odd_npy(draw: st.DrawFn, good: np.ndarray) -> bytes:
    kind = draw(st.sampled_from(["bytes", "shape", "dtype", "values", "npz"]))
    if kind == "shape":
        shape = draw(st.sampled_from([(N_ITEMS,), (N_ITEMS - 3, 4), (N_ITEMS + 5, 4), (0, 4), (N_ITEMS, 0),
                                      (N_ITEMS, 2, 2), ()]))
        return _npy_bytes(np.zeros(shape, np.float32))
    if kind == "dtype":
        arr = draw(st.sampled_from([good.astype(bool), good.astype(np.complex64), good.astype("U3"),
                                    good.astype(np.float16), good.astype(np.int8)]))
        return _npy_bytes(arr)
    if kind == "values":
        arr = good.astype(np.float64).copy()
        arr.flat[draw(st.integers(0, arr.size - 1))] = draw(st.sampled_from([np.nan, np.inf, 1e300, -1e300]))
        return _npy_bytes(arr)
    if kind == "npz":
        import io

        buf = io.BytesIO()
        np.savez(buf, a=good)
        return buf.getvalue()
    return draw(mutate_bytes(_npy_bytes(good)))


@FUZZ
@given(data=st.data(), target=st.sampled_from(["inter", "image_feat", "text_feat"]), json_out=st.booleans())
def test_mmrec_folders(data: st.DataObject, target: str, json_out: bool) -> None:
    rows = [(int(u[1:]), int(i[1:]), r, t, [0, 0, 0, 1, 2][k % 5]) for k, (u, i, r, t) in enumerate(ROWS)]
    inter = _delimited(rows, ["userID", "itemID", "rating", "timestamp", "x_label"], "\t")
    feats = np.random.default_rng(0).normal(size=(N_ITEMS, 4)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mm"
        folder.mkdir()
        (folder / "mm.inter").write_bytes(data.draw(mutate_delimited(inter, "\t")) if target == "inter"
                                          else inter.encode())
        for name in ("image_feat", "text_feat"):
            (folder / f"{name}.npy").write_bytes(data.draw(_odd_npy(feats)) if name == target else _npy_bytes(feats))
        _check(folder, "mmrec", read_mmrec, json_out)


@FUZZ
@given(data=st.data(), target=st.sampled_from(["inter", "item"]), json_out=st.booleans())
def test_recbole_folders(data: st.DataObject, target: str, json_out: bool) -> None:
    inter = _delimited(ROWS, ["user_id:token", "item_id:token", "rating:float", "timestamp:float"], "\t")
    items = _delimited([(i, t, p, g) for i, t, p, g in ITEMS],
                       ["item_id:token", "title:token_seq", "price:float", "genre:token"], "\t")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rb"
        folder.mkdir()
        (folder / "rb.inter").write_bytes(data.draw(mutate_delimited(inter, "\t")) if target == "inter"
                                          else inter.encode())
        (folder / "rb.item").write_bytes(data.draw(mutate_delimited(items, "\t")) if target == "item"
                                         else items.encode())
        _check(folder, "recbole", read_recbole, json_out)


def test_odd_json_values_cover_the_types_readers_meet() -> None:
    """The mutation vocabulary itself: big ints, deep nesting, NUL and non-BMP text are all in it."""
    kinds = {type(v).__name__ for v in ODD_JSON}
    assert {"NoneType", "bool", "int", "float", "str", "list", "dict"} <= kinds
    assert any(isinstance(v, int) and v > 2**64 for v in ODD_JSON)
