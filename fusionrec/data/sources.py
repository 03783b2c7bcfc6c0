"""Sources: what a dataset is made of (files and column roles), before anything is read.

A :class:`DataSource` names the interaction file(s), optional item / user
tables, feature ``.npy`` files and the column roles (see
:mod:`fusionrec.data.roles`). :func:`table_source`, :func:`mmrec_source` and
:func:`recbole_source` describe the three layouts; :func:`source_for_path`
detects the layout of a path. :func:`fusionrec.data.validation.validate_source`
turns a source into a Dataset.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionrec.data.rawtable import RawTable, guess_format, missing_file
from fusionrec.errors import UserError

# Common table names, most specific first: an interaction log, an item catalogue, a user table.
INTERACTION_STEMS = ("interactions", "ratings", "inter", "events", "transactions", "purchases", "clicks",
                     "orders", "plays", "reviews")
ITEM_STEMS = ("items", "item", "articles", "products", "movies", "catalog", "catalogue", "tracks", "books",
              "artists")
USER_STEMS = ("users", "user", "customers", "members", "visitors")
TABLE_EXTENSIONS = (".csv", ".tsv", ".parquet", ".jsonl")
@dataclass
class FeatureSpec:
    """A precomputed feature matrix: ``path`` is a ``.npy`` whose row i is item i.

    ``missing`` optionally names a boolean ``.npy`` (True = the item has no
    content; its row is a placeholder such as MMRec's mean vector), which becomes
    ``FeatureModality.mask == False``. ``ids`` optionally names a file listing the
    original item id of every row (``.npy`` or one id per line) when rows are not
    in the dataset's item order.
    """

    name: str
    kind: str
    path: Path
    missing: Path | None = None
    ids: Path | None = None


@dataclass
class DataSource:
    """Everything needed to build a Dataset: files plus column roles. Nothing is read yet."""

    name: str
    format: str                      # csv/parquet/jsonl/mmrec/recbole
    interactions: list[tuple[Path, str | None]]  # (file, split label forced on its rows or None)
    root: Path | None                 # media paths resolve against it (None: in-memory data, paths unchecked)
    columns: dict[str, str] = field(default_factory=dict)
    items_path: Path | None = None
    item_columns: dict[str, str] = field(default_factory=dict)
    users_path: Path | None = None
    user_columns: dict[str, str] = field(default_factory=dict)
    features: list[FeatureSpec] = field(default_factory=list)
    # MMRec/RecBole-style integer ids: item j is id j (so feature row j is item j)
    integer_ids: bool = False
    table_format: str | None = None   # csv/parquet/jsonl for the interaction file
    # "events": repeated user-item rows are repeat behaviour (info); "duplicates": byte-identical
    # rows are reported as a warning. Both keep every row.
    repeats: str = "events"
    # "keep": an id missing from the item/user table joins without side data (warning);
    # "quarantine": the table is complete, so such rows are set aside as unknown_item/unknown_user
    unknown_items: str = "keep"
    # in-memory tables by the path they stand in for (Dataset.from_frames): read instead of files
    tables: dict[str, RawTable] = field(default_factory=dict)


def _as_path(value: str | Path, base: Path | None) -> Path:
    p = Path(value).expanduser()
    if not p.is_absolute() and base is not None and not p.exists():
        candidate = base / p
        if candidate.exists() or not p.parent.exists():
            return candidate
    return p


_KIND_PATTERNS = (
    ("audio", re.compile(r"audio|vggish|whisper|wav2vec|clap|mfcc|musicnn|hubert", re.IGNORECASE)),
    ("image", re.compile(r"image|img|visual|vit|resnet|vgg|clip|poster|efficientnet|cover", re.IGNORECASE)),
    ("text", re.compile(r"text|minilm|bert|sentence|mpnet|title|desc|review|t5|e5", re.IGNORECASE)),
)


def guess_kind(name: str) -> str:
    """Modality kind from a feature file name (``vggish.npy`` -> audio, ``text_feat.npy`` -> text)."""
    for kind, pattern in _KIND_PATTERNS:
        if pattern.search(name):
            return kind
    return "other"


def feature_specs(features: Mapping[str, Mapping[str, Any]], base: Path) -> list[FeatureSpec]:
    """``{name: {path, kind, missing?, ids?}}`` (DataConfig.features) -> specs with resolved paths."""
    specs = []
    for name, spec in features.items():
        if isinstance(spec, (str, Path)):
            spec = {"path": spec}
        if "path" not in spec:
            raise UserError(f"feature {name!r} has no 'path'", "data.features",
                            f"write data.features.{name}.path: <file>.npy")
        specs.append(
            FeatureSpec(
                name=name,
                kind=str(spec.get("kind") or guess_kind(f"{name} {spec['path']}")),
                path=_as_path(spec["path"], base),
                missing=_as_path(spec["missing"], base) if spec.get("missing") else None,
                ids=_as_path(spec["ids"], base) if spec.get("ids") else None,
            )
        )
    return specs


def discover_mmrec_features(folder: Path) -> dict[str, dict[str, str]]:
    """Feature ``.npy`` files of an MMRec folder: ``text_feat.npy`` -> text, ``vggish.npy`` -> audio...

    ``<x>_missing.npy`` files are masks for ``<x>_feat.npy``; other files named
    like masks or id lists are skipped.
    """
    found: dict[str, dict[str, str]] = {}
    files = sorted(p.name for p in folder.glob("*.npy"))
    masks = {f for f in files if f.endswith(("_missing.npy", "_mask.npy"))}
    for fname in files:
        if fname in masks or fname.endswith("_ids.npy"):
            continue
        stem = fname[:-4]
        name = stem.removesuffix("_feat")
        name = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_").lower() or "feat"
        kind = guess_kind(fname)
        if name in ("v", "image"):
            kind = "image"
        elif name in ("t", "text"):
            kind = "text"
        entry = {"path": fname, "kind": kind}
        prefix = stem.removesuffix("_feat")
        for mask_name in (f"{prefix}_missing.npy", f"{prefix}_mask.npy"):
            if mask_name in masks:
                entry["missing"] = mask_name
        found[name] = entry
    return found


def mmrec_source(
    path: str | Path,
    name: str | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    items_path: str | Path | None = None,
    item_columns: Mapping[str, str] | None = None,
    columns: Mapping[str, str] | None = None,
) -> DataSource:
    """Describe an MMRec folder: ``<name>.inter`` (userID itemID [rating] [timestamp] x_label) + ``.npy``.

    ``path`` is the folder or the ``.inter`` file. When ``features`` is None every
    ``.npy`` in the folder is used (see :func:`discover_mmrec_features`). Ids are
    MMRec's integers, so internal item j is itemID j and feature row j is item j.
    """
    path = Path(path)
    if path.is_dir():
        folder = path
        inters = sorted(folder.glob("*.inter"))
        preferred = [p for p in inters if p.stem == (name or folder.name)]
        if preferred:
            inter = preferred[0]
        elif len(inters) == 1:
            inter = inters[0]
        elif not inters:
            raise UserError("no MMRec interaction file (*.inter)", str(folder),
                            "point at the folder holding <name>.inter or at the .inter file itself")
        else:
            raise UserError(f"several .inter files: {[p.name for p in inters]}", str(folder),
                            "pass the .inter file you mean as the path")
    elif path.is_file():
        inter, folder = path, path.parent
    else:
        raise missing_file(path, "MMRec folder or .inter file")
    feats = discover_mmrec_features(folder) if features is None else dict(features)
    cols = {"user": "userID", "item": "itemID", "split": "x_label"}
    cols.update(columns or {})
    items = _as_path(items_path, folder) if items_path else None
    return DataSource(
        name=name or inter.stem,
        format="mmrec",
        interactions=[(inter, None)],
        root=items.parent if items is not None else folder,
        columns=cols,
        items_path=items,
        item_columns=dict(item_columns or {}),
        features=feature_specs(feats, folder),
        integer_ids=True,
        table_format="csv",
    )


def table_source(
    path: str | Path,
    columns: Mapping[str, str] | None = None,
    items_path: str | Path | None = None,
    item_columns: Mapping[str, str] | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
    name: str | None = None,
    fmt: str | None = None,
    users_path: str | Path | None = None,
) -> DataSource:
    """Describe a CSV/Parquet/JSONL dataset.

    ``path`` is the interaction file, or a folder holding one (``interactions``,
    ``ratings``, ``transactions``... see :data:`INTERACTION_STEMS`). Item and user
    tables not given are looked for *beside* the interactions under their common
    names (:data:`ITEM_STEMS`, :data:`USER_STEMS`), so unknown ids are caught.
    """
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    if path.is_dir():
        found = _find_named(path, INTERACTION_STEMS)
        if found is None:
            raise UserError("no interaction table in the folder", str(path),
                            f"name it interactions.csv (or one of {', '.join(INTERACTION_STEMS)} with "
                            ".csv/.tsv/.parquet/.jsonl), or pass the file itself")
        path = found
    if path.exists():
        if items_path is None:
            items_path = _find_named(folder, ITEM_STEMS, exclude=path)
        if users_path is None:
            users_path = _find_named(folder, USER_STEMS, exclude=path)
    else:
        raise missing_file(path, "interaction file")
    items = _as_path(items_path, folder) if items_path else None
    return DataSource(
        name=name or folder.name,
        format=fmt or guess_format(path),
        interactions=[(path, None)],
        root=items.parent if items is not None else folder,
        columns=dict(columns or {}),
        items_path=items,
        item_columns=dict(item_columns or {}),
        users_path=_as_path(users_path, folder) if users_path else None,
        features=feature_specs(features or {}, folder),
        table_format=fmt or guess_format(path),
    )


def _find_named(folder: Path, stems: Iterable[str], exclude: Path | None = None) -> Path | None:
    """The first ``<stem>.<ext>`` in ``folder`` (stems in order of preference), not ``exclude``."""
    for stem in stems:
        for ext in TABLE_EXTENSIONS:
            candidate = folder / f"{stem}{ext}"
            if candidate.is_file() and (exclude is None or candidate.resolve() != exclude.resolve()):
                return candidate
    return None


def recbole_source(
    path: str | Path,
    name: str | None = None,
    columns: Mapping[str, str] | None = None,
    item_columns: Mapping[str, str] | None = None,
    features: Mapping[str, Mapping[str, Any]] | None = None,
) -> DataSource:
    """Describe a RecBole atomic-file folder: ``<name>.inter`` [+ ``.item``, ``.user``].

    Benchmark files ``<name>.train.inter`` / ``.valid.inter`` / ``.test.inter``
    become a predefined split. Role defaults follow RecBole's field names
    (``user_id``, ``item_id``, ``rating``, ``timestamp``, ``label``). In the item
    table, ``token_seq`` columns are text and ``token``/``float`` columns are
    attributes unless ``item_columns`` says otherwise.
    """
    path = Path(path)
    if path.is_file():
        folder, stem = path.parent, path.name.split(".")[0]
    elif path.is_dir():
        folder = path
        stems = sorted({p.name.split(".")[0] for p in folder.glob("*.inter")})
        if name in stems:
            stem = name
        elif folder.name in stems:
            stem = folder.name
        elif len(stems) == 1:
            stem = stems[0]
        else:
            raise UserError(f"cannot tell which RecBole dataset to read: {stems or 'no .inter files'}",
                            str(folder), "pass the .inter file as the path")
    else:
        raise missing_file(path, "RecBole folder or .inter file")
    bench = [(folder / f"{stem}.{s}.inter", s) for s in ("train", "valid", "test")]
    if all(p.is_file() for p, _ in bench):
        inters: list[tuple[Path, str | None]] = list(bench)
    else:
        inters = [(folder / f"{stem}.inter", None)]
    cols = {"user": "user_id", "item": "item_id"}
    cols.update(columns or {})
    item_file = folder / f"{stem}.item"
    user_file = folder / f"{stem}.user"
    return DataSource(
        name=name or stem,
        format="recbole",
        interactions=inters,
        root=folder,
        columns=cols,
        items_path=item_file if item_file.is_file() else None,
        item_columns=dict(item_columns or {}),
        users_path=user_file if user_file.is_file() else None,
        user_columns={"user": cols["user"]},
        features=feature_specs(features or {}, folder),
        table_format="csv",
    )


def source_for_path(
    path: str | Path,
    fmt: str | None = None,
    columns: dict[str, str] | None = None,
    items_path: str | Path | None = None,
    item_columns: dict[str, str] | None = None,
    features: dict[str, dict[str, Any]] | None = None,
    name: str | None = None,
    users_path: str | Path | None = None,
    repeats: str = "events",
) -> DataSource:
    """Build a DataSource for a file or folder, detecting the format when ``fmt`` is None/auto."""
    path = Path(path)
    if not path.exists():
        raise UserError("data path not found", str(path), "pass an existing file or folder")
    fmt = None if fmt in (None, "auto") else fmt
    if fmt is None:
        fmt = detect_format(path)
    if fmt == "mmrec":
        source = mmrec_source(path, name, features or None, items_path, item_columns, columns)
    elif fmt == "recbole":
        source = recbole_source(path, name, columns, item_columns, features)
    elif fmt in ("csv", "parquet", "jsonl", "tsv"):
        source = table_source(path, columns, items_path, item_columns, features, name,
                              None if path.is_dir() else ("csv" if fmt == "tsv" else fmt), users_path)
    else:
        raise UserError(f"unknown data format {fmt!r}", str(path), "use csv, parquet, jsonl, mmrec or recbole")
    if users_path is not None:
        source.users_path = Path(users_path)
    source.repeats = repeats
    return source


def detect_format(path: Path) -> str:
    """mmrec / recbole / csv / parquet / jsonl from a path (``.inter`` headers tell MMRec from RecBole)."""
    inter: Path | None = None
    if path.is_dir():
        inters = sorted(path.glob("*.inter"))
        if inters:
            inter = inters[0]
        else:
            for ext, fmt in ((".csv", "csv"), (".tsv", "csv"), (".parquet", "parquet"), (".jsonl", "jsonl")):
                if any(path.glob(f"*{ext}")):
                    return fmt
            raise UserError("cannot tell the data format: no .inter/.csv/.parquet/.jsonl files", str(path),
                            "pass --format csv|parquet|jsonl|mmrec|recbole")
    elif path.suffix == ".inter":
        inter = path
    if inter is not None:
        with open(inter, "r", encoding="utf-8", errors="replace") as fh:
            header = fh.readline()
        return "recbole" if ":token" in header or ":float" in header else "mmrec"
    return guess_format(path)


__all__ = [
    "INTERACTION_STEMS", "ITEM_STEMS", "TABLE_EXTENSIONS", "USER_STEMS", "DataSource", "FeatureSpec",
    "detect_format", "discover_mmrec_features", "feature_specs", "guess_kind", "mmrec_source", "recbole_source",
    "source_for_path", "table_source",
]
