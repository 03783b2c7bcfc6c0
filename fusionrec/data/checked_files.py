"""Reading files that may be damaged or hostile: ``.npy``, JSON, YAML, Parquet, paths in a folder.

Every reader here either returns the content or raises one :class:`UserError`
that names the file, says what is wrong with it and how to fix it; none lets a
parser's own exception (``EOFError``, ``TokenError``, ``SafetensorError``...)
through. :func:`read_npy` checks a ``.npy`` header against the file's size
*before* allocating anything, so a header claiming a huge shape costs nothing.
"""
from __future__ import annotations

import json
import math
import os
import tokenize
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.errors import UserError

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
# what numpy's header parser (ast.literal_eval over untrusted text) may raise on a damaged header
_HEADER_ERRORS = (ValueError, SyntaxError, EOFError, tokenize.TokenError, UnicodeDecodeError, TypeError,
                  OverflowError, MemoryError, RecursionError, KeyError, IndexError)


def npy_header(path: Path, fix: str) -> tuple[tuple[int, ...], np.dtype, bool, int]:
    """``(shape, dtype, fortran_order, data_offset)`` of a ``.npy`` file, checked against its size.

    Raises :class:`UserError` for a missing, empty, truncated, padded, object-dtype,
    ``.npz`` or otherwise non-``.npy`` file. Reads only the header.
    """
    if not path.is_file():
        raise UserError("file not found", str(path), fix)
    size = path.stat().st_size
    if size == 0:
        raise UserError("file is empty (0 bytes)", str(path), fix)
    with open(path, "rb") as fh:
        start = fh.read(len(_NPY_MAGIC))
        if start.startswith(_ZIP_MAGIC):
            raise UserError("file is a .npz archive (numpy.savez), not a .npy array", str(path),
                            "save a single array with numpy.save, e.g. np.save(path, np.load(npz)['arr_0'])")
        if start != _NPY_MAGIC:
            raise UserError("not a .npy file (it does not start with numpy's \\x93NUMPY marker)", str(path), fix)
        fh.seek(0)
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version in ((2, 0), (3, 0)):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except _HEADER_ERRORS as err:
            raise UserError(f"the .npy header is damaged ({type(err).__name__}: {str(err)[:160]})",
                            str(path), fix) from None
        offset = fh.tell()
    if dtype.hasobject:
        raise UserError("the array holds Python objects (dtype object), which are never loaded (pickle)",
                        str(path), "save a numeric array, e.g. np.save(path, matrix.astype('float32'))")
    # Python ints: a product of huge dimensions must not wrap around
    expected = math.prod(int(d) for d in shape) * int(dtype.itemsize)
    actual = size - offset
    if actual < expected:
        raise UserError(f"file is truncated: its header says shape {tuple(shape)} of {dtype} "
                        f"({_size(expected)}) but only {_size(actual)} follow", str(path), fix)
    if actual > expected:
        raise UserError(f"file has {actual - expected:,} unexpected bytes after the array of shape "
                        f"{tuple(shape)} (damaged or edited header)", str(path), fix)
    return tuple(int(d) for d in shape), dtype, bool(fortran), offset


def read_npy(path: str | Path, fix: str = "save the array again with numpy.save") -> np.ndarray:
    """A ``.npy`` array, never pickled, after :func:`npy_header` checked it fits the file."""
    path = Path(path)
    npy_header(path, fix)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:  # e.g. the file changed between the check and the read
        raise UserError(f"cannot read the array: {err}", str(path), fix) from None


def read_json(path: str | Path, fix: str, kind: type = dict) -> Any:
    """A JSON file whose top level is ``kind`` (an object by default)."""
    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", str(path), fix)
    try:
        value = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise UserError(f"not valid JSON: {str(err)[:200]}", str(path), fix) from None
    if not isinstance(value, kind):
        raise UserError(f"expected a JSON {_kind_name(kind)} at the top level, got {type(value).__name__}",
                        str(path), fix)
    return value


def read_yaml_mapping(path: str | Path, fix: str) -> dict[str, Any]:
    """A YAML file holding a mapping; only plain YAML (``yaml.safe_load``): ``!!python`` tags are refused."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", str(path), fix)
    try:
        value = yaml.safe_load(path.read_bytes())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path} line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or str(err)
        raise UserError(f"not valid plain YAML: {str(problem)[:200]} (python tags such as !!python/object are "
                        "never loaded)", where, fix) from None
    except (ValueError, RecursionError) as err:  # undecodable bytes, absurd nesting
        raise UserError(f"not readable as YAML: {str(err)[:200]}", str(path), fix) from None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise UserError(f"expected a YAML mapping (key: value lines), got {type(value).__name__}", str(path), fix)
    return value


def read_parquet(path: str | Path, fix: str) -> Any:
    """A Parquet file as a DataFrame; a truncated or non-Parquet file is a UserError."""
    import pandas as pd
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise UserError("file not found", str(path), fix)
    try:
        return pd.read_parquet(path)
    except (pa.ArrowException, OSError, ValueError, TypeError, IndexError, KeyError) as err:
        # KeyError: the pandas metadata stored in the file is damaged
        raise UserError(f"not a readable Parquet file: {str(err)[:200]}", str(path), fix) from None


NAME_MAX = 255
"""Longest file name (one path component, in bytes) of Linux, macOS and Windows file systems."""


def inside(folder: str | Path, relative: str, what: str, fix: str) -> Path:
    """``folder / relative``, refused when it leads out of ``folder`` (``..``, absolute paths, symlinks).

    The returned path need not exist; when it does, its real location (after
    following every symlink) must also lie inside ``folder``.
    """
    folder = Path(folder)
    base = Path(os.path.realpath(folder))
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise UserError(f"{what}: {relative!r} is not a file name", str(folder), fix)
    try:
        longest = max((len(os.fsencode(part)) for part in Path(relative).parts), default=0)
    except UnicodeEncodeError:  # a lone surrogate ("\ud800") no file system can store
        raise UserError(f"{what}: {relative[:80]!r} is not a file name this system can store", str(folder),
                        fix) from None
    if longest > NAME_MAX:
        raise UserError(f"{what}: a file name of {longest} bytes in {relative[:80]!r}... is longer than file "
                        f"systems allow ({NAME_MAX} bytes)", str(folder), fix)
    candidate = folder / relative
    try:
        real = Path(os.path.realpath(candidate))
        if Path(relative).is_absolute() or not real.is_relative_to(base):
            raise UserError(f"{what}: {relative!r} leads outside the folder (to {real})", str(folder), fix)
        if candidate.is_symlink() and not candidate.exists():
            raise UserError(f"{what} is a broken symbolic link (to {os.readlink(candidate)})", str(candidate), fix)
    except OSError as err:  # a path the file system cannot even look up (too long, too deep, a loop)
        raise UserError(f"{what}: {relative[:80]!r} cannot be looked up: {err.strerror}", str(folder), fix) from None
    return candidate


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n:,} bytes"


def _kind_name(kind: type) -> str:
    return {dict: "object", list: "array"}.get(kind, kind.__name__)


__all__ = ["inside", "npy_header", "read_json", "read_npy", "read_parquet", "read_yaml_mapping"]
