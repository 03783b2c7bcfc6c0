"""Bounds on what a client can make the server hold, read or decode, checked before the work is done.

* images: pixel count and aspect ratio read from the file header, before any pixel is decoded
  (a 300-byte PNG of 1 x 60000 pixels would otherwise be scaled to 256 x 15 million);
* media files named by path: their size, before they are read, and the read itself is bounded;
* text from clients: valid UTF-8 only (a lone surrogate such as ``"\\ud800"`` cannot be stored);
* item attributes: typed like the catalogue column they land in, so one post cannot turn a
  numeric column into something later starts and retrains trip over, and bounded in number.

Every refusal is a :class:`~fusionrec.serve.errors.ServeError` naming the field and the config key.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.serve.errors import ServeError


def utf8_text(value: str) -> str:
    """Pydantic validator: refuse strings that cannot be written as UTF-8 (lone surrogates)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        bad = value[err.start]
        raise ValueError(f"contains a lone surrogate \\u{ord(bad):04x} at position {err.start}; "
                         "send valid UTF-8 text") from err
    return value


# ---------------------------------------------------------------------- images
def check_image_header(data: bytes, field: str, max_pixels: int, max_aspect: float) -> tuple[int, int]:
    """Size of the image in ``data`` from its header; 422 when it is unreadable, too large or too thin."""
    from PIL import Image, UnidentifiedImageError

    try:
        # Image.open parses the header only; pixels are decoded later by the encoder, so the
        # bounds below are checked before any memory in proportion to the pixels is taken
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            if width < 1 or height < 1:
                raise ServeError(422, field, f"image is {width}x{height} pixels", "send a non-empty image")
            if width * height > max_pixels:
                raise ServeError(422, field, f"image is {width}x{height} ({width * height / 1e6:.1f} megapixels); "
                                 f"the limit is {max_pixels / 1e6:g} megapixels (max_image_pixels)",
                                 "send a smaller image")
            aspect = max(width, height) / min(width, height)
            if aspect > max_aspect:
                raise ServeError(422, field, f"image is {width}x{height}, an aspect ratio of {aspect:.0f}:1; "
                                 f"the limit is {max_aspect:g}:1 (max_image_aspect)", "crop the image")
            im.verify()
    except ServeError:
        raise
    except Image.DecompressionBombError as err:
        raise ServeError(422, field, f"image has too many megapixels: {err}", "send a smaller image") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ServeError(422, field, f"cannot decode the image: {err}", "send a JPEG/PNG/WebP file") from err
    return width, height


def read_bounded(path: Path, limit: int, field: str) -> bytes:
    """The bytes of ``path``, refused with 413 when it holds more than ``limit`` (checked before reading)."""
    check_file_size(path, limit, field)
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)       # the file may have grown since stat: never read more than this
    if len(data) > limit:
        raise ServeError(413, field, f"file is over {limit} bytes; the limit is {limit} (max_media_file_bytes)",
                         "send a smaller file")
    return data


def check_file_size(path: Path, limit: int, field: str) -> None:
    size = path.stat().st_size
    if size > limit:
        raise ServeError(413, field, f"file is {size} bytes; the limit is {limit} (max_media_file_bytes)",
                         "send a smaller file, or raise max_media_file_bytes in the serve config")


# ---------------------------------------------------------------------- attributes
class AttributeTypeError(ValueError):
    """A value that does not fit the type of the catalogue column it would land in."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _kind(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    return "text"


def conform_value(key: str, value: Any, kind: str) -> Any:
    """``value`` converted losslessly to the column ``kind``, or :class:`AttributeTypeError`."""
    if value is None:
        return None
    if kind in ("int", "float"):
        if isinstance(value, bool):
            raise AttributeTypeError(key, f"the catalogue's {key!r} column holds numbers; got {value!r}")
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError as err:
                raise AttributeTypeError(key, f"the catalogue's {key!r} column holds numbers; got {value!r}") from err
        if isinstance(value, (int, float, np.integer, np.floating)):
            number = float(value)
            if not math.isfinite(number):
                raise AttributeTypeError(key, f"{key!r} must be a finite number; got {value!r}")
            if number.is_integer() and abs(number) < 2**53:
                return int(number)
            return number
        raise AttributeTypeError(key, f"the catalogue's {key!r} column holds numbers; got {type(value).__name__}")
    if kind == "bool":
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise AttributeTypeError(key, f"the catalogue's {key!r} column holds true/false; got {value!r}")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, np.integer, np.floating)):
        if isinstance(value, float) and not math.isfinite(value):
            raise AttributeTypeError(key, f"{key!r} must be text or a finite number; got {value!r}")
        return str(value)
    if isinstance(value, str):
        return value
    raise AttributeTypeError(key, f"{key!r} must be text, a number, true/false or null; got {type(value).__name__}")


def conform_attributes(frame: pd.DataFrame, attributes: dict[str, Any]) -> dict[str, Any]:
    """Every value typed like its catalogue column (new keys: as sent, numbers and text only)."""
    out: dict[str, Any] = {}
    columns = frame.columns
    for key, value in attributes.items():
        kind = _kind(frame[key]) if key in columns else ("text" if isinstance(value, str) else "any")
        if kind == "any":
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise AttributeTypeError(key, f"{key!r} must be text, a number, true/false or null")
            if isinstance(value, float) and not math.isfinite(value):
                raise AttributeTypeError(key, f"{key!r} must be a finite number; got {value!r}")
            out[key] = value
        else:
            out[key] = conform_value(key, value, kind)
    return out


def check_attribute_keys(frame: pd.DataFrame, attributes: dict[str, Any], field: str,
                         per_item: int, total: int) -> None:
    """Bound keys per item and the number of columns new keys would grow the catalogue to."""
    if len(attributes) > per_item:
        raise ServeError(422, field, f"{len(attributes)} attribute keys; the limit is {per_item} per item "
                         "(max_attributes_per_item)", "send fewer attributes")
    new = [k for k in attributes if k not in frame.columns]
    if new and len(frame.columns) + len(new) > total:
        raise ServeError(422, field, f"new attribute keys {new[:5]} would make {len(frame.columns) + len(new)} "
                         f"attribute columns; the limit is {total} (max_attribute_columns)",
                         "use the catalogue's existing attribute keys")
