"""``fusionrec data validate|info|convert``: check a dataset, summarise it, or write it as RecBole files.

``validate`` exits 0 when the data can be loaded (bad rows are only quarantined)
and 2 with one clear message when it cannot (missing file, no user/item column,
unreadable format, no good rows, features that do not match the items).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from fusionrec.cli_args import DATA_HELP
from fusionrec.data.init_cmd import DESCRIPTION_FILE, add_init_parser
from fusionrec.errors import UserError

FORMATS = ("auto", "csv", "tsv", "parquet", "jsonl", "mmrec", "recbole")


def _mapping(pairs: list[str] | None, option: str) -> dict[str, str]:
    """``["user=uid", "item=iid"]`` or ``["user=uid,item=iid"]`` -> dict."""
    out: dict[str, str] = {}
    for chunk in pairs or []:
        # text=title,genres keeps its comma list: split on ',' only before a new 'role='
        pieces: list[str] = []
        for part in chunk.split(","):
            if "=" in part or not pieces:
                pieces.append(part)
            else:
                pieces[-1] += "," + part
        for piece in pieces:
            if "=" not in piece:
                raise UserError(f"{option} value {piece!r} is not role=column", option,
                                f"write e.g. {option} user=customer,item=product")
            role, col = piece.split("=", 1)
            out[role.strip()] = col.strip()
    return out


def _features(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """``--features image=img.npy:image`` -> ``{"image": {"path": "img.npy", "kind": "image"}}``."""
    out: dict[str, dict[str, Any]] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise UserError(f"--features value {pair!r} is not name=path[:kind]", "--features",
                            "write e.g. --features text=text_feat.npy:text")
        name, rest = pair.split("=", 1)
        path, _, kind = rest.partition(":")
        out[name] = {"path": path, **({"kind": kind} if kind else {})}
    return out


def _cmd_validate(args: argparse.Namespace) -> int:
    from fusionrec.data.validate import validate_path

    fmt = None if args.format == "auto" else args.format
    if args.path and not args.data and not args.dataset and (Path(args.path) / DESCRIPTION_FILE).is_file():
        args.data = args.path  # a described folder is read through its description
    if args.data or args.dataset:
        # a description or a preset is validated exactly as load_dataset would read it
        from fusionrec.cli_args import data_config_from_args
        from fusionrec.data.loading import source_from_config
        from fusionrec.data.validate import validate_source

        cfg = data_config_from_args(args)
        assert cfg is not None
        if cfg.format == "demo":
            raise UserError(f"dataset {args.dataset!r} is generated, not read from files", "--dataset",
                            "validate a dataset folder or a file-based preset")
        _, report = validate_source(source_from_config(cfg), args.quarantine_dir)
    elif args.path:
        _, report = validate_path(
            args.path, fmt, quarantine_dir=args.quarantine_dir,
            columns=_mapping(args.columns, "--columns") or None,
            items_path=args.items, item_columns=_mapping(args.item_columns, "--item-columns") or None,
            features=_features(args.features) or None,
        )
    else:
        raise UserError("nothing to validate", "fusionrec data validate",
                        "pass --data DIR (described by `fusionrec data init DIR`), a PATH or --dataset NAME")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    elif not report.fatal:
        print(report.to_text(max_examples=args.examples))
    if report.fatal:
        report.raise_if_fatal()  # cli.main prints the one message and exits 2
    if args.strict and not report.ok:
        print("strict mode: rows were quarantined", file=sys.stderr)
        return 1
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from fusionrec.config import DataConfig
    from fusionrec.data.loading import load_dataset_with_report
    from fusionrec.data.validate import summarise, validate_path

    if args.data:
        from fusionrec.cli_args import load_description

        description = load_description(args.data)
        dataset, _ = load_dataset_with_report(description)
        if description.positive_rating is not None:  # as train and evaluate apply it
            dataset = dataset.with_positive_rating(description.positive_rating)
    elif args.dataset:
        dataset, _ = load_dataset_with_report(DataConfig(name=args.dataset))
    elif args.path:
        dataset, report = validate_path(args.path, None if args.format == "auto" else args.format)
        report.raise_if_fatal()
    else:
        raise UserError("nothing to describe", "fusionrec data info", "pass --data DIR, a PATH or --dataset NAME")
    assert dataset is not None
    info = summarise(dataset)
    if args.json:
        print(json.dumps(info, indent=2, default=str))
        return 0
    print(f"dataset {dataset.name!r}")
    print(f"  users {info['n_users']}, items {info['n_items']}, interactions {info['n_interactions']} "
          f"(density {info['density']:.4%})")
    print(f"  ratings: {'yes' if info['has_rating'] else 'no'}, timestamps: {'yes' if info['has_timestamp'] else 'no'}")
    from fusionrec.data.dataset import positive_rows

    negative = int((~positive_rows(dataset.interactions)).sum())
    if negative:
        print(f"  negative feedback: {negative} of {len(dataset.interactions)} rows (label 0 or a rating under "
              "positive_rating): never training positives")
    if dataset.has_split:
        from fusionrec.data.split import split_summary

        print("  split:")
        for row in split_summary(dataset).itertuples():
            print(f"    {row.split:<5} {row.interactions:>9} interactions, {row.users:>7} users, {row.items:>7} items")
    else:
        print("  split: none (choose one with data.split.method)")
    for mod in info["modalities"]:
        print(f"  modality {mod['name']:<14} {mod['kind']:<9} dim {mod['dim']:<5} coverage {mod['coverage']:.1%}")
    for key in ("text_coverage", "image_coverage", "audio_coverage"):
        if key in info:
            print(f"  {key.replace('_', ' ')}: {info[key]:.1%}")
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from fusionrec.data.convert import convert_dataset
    from fusionrec.data.loading import load_dataset_with_report
    from fusionrec.data.validate import validate_path

    if args.path and not args.data and not args.dataset and (Path(args.path) / DESCRIPTION_FILE).is_file():
        args.data = args.path  # a described folder is read through its description
    if args.data or args.dataset:
        from fusionrec.cli_args import data_config_from_args

        cfg = data_config_from_args(args)
        assert cfg is not None
        dataset, _ = load_dataset_with_report(cfg)
    elif args.path:
        dataset, report = validate_path(
            args.path, None if args.format == "auto" else args.format,
            columns=_mapping(args.columns, "--columns") or None,
            items_path=args.items, item_columns=_mapping(args.item_columns, "--item-columns") or None,
            features=_features(args.features) or None,
        )
        report.raise_if_fatal()
    else:
        raise UserError("nothing to convert", "fusionrec data convert",
                        "pass --data DIR (described by `fusionrec data init DIR`), a PATH or --dataset NAME")
    assert dataset is not None
    result = convert_dataset(dataset, args.out, args.name)
    media = f"{result.linked} media file(s) linked, {result.copied} copied"
    feats = f"{len(result.features)} feature file(s)"
    print(f"wrote RecBole atomic files for {dataset.name!r} to {result.folder} ({media}, {feats}, "
          f"{DESCRIPTION_FILE}); read it back with --data {result.folder}")
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``fusionrec data`` and its sub-subcommands."""
    parser = subparsers.add_parser("data", help="validate, describe or convert a dataset",
                                   description="Dataset tools: validate (with quarantine), info, convert.")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    add_init_parser(sub)  # fusionrec data init DIR: writes DIR/fusionrec.yaml

    def common(p: argparse.ArgumentParser, path_required: bool = True) -> None:
        p.add_argument("path", nargs=None if path_required else "?",
                       help="interaction file or dataset folder (csv/tsv/parquet/jsonl, MMRec or RecBole)")
        p.add_argument("--format", choices=FORMATS, default="auto", help="input format (default: detect)")

    v = sub.add_parser("validate", help="check a dataset; quarantine bad rows; exit 0 unless it cannot load")
    common(v, path_required=False)
    v.add_argument("--dataset", help="validate a preset instead of a path (e.g. ml100k)")
    v.add_argument("--data", metavar="DIR_OR_YAML", help=DATA_HELP)
    v.add_argument("--quarantine-dir", help="write quarantine.csv (one line per bad row) and report.json here")
    v.add_argument("--columns", action="append", metavar="ROLE=COL",
                   help="interaction column roles: user, item, rating, timestamp, label, split")
    v.add_argument("--items", help="item table (default: items/articles/products/movies.<ext> next to the "
                                   "interactions)")
    v.add_argument("--item-columns", action="append", metavar="ROLE=COL",
                   help="item roles: item, text=a,b (joined into the text the encoders read), image_path=col or a "
                        "pattern such as images/{item_id}.jpg or images/{item_id:.3}/{item_id}.jpg, audio_path, "
                        "attributes=a,b, id_map=file")
    v.add_argument("--features", action="append", metavar="NAME=PATH[:KIND]", help="feature .npy files")
    v.add_argument("--json", action="store_true", help="print the report as JSON")
    v.add_argument("--strict", action="store_true", help="exit 1 when any row was quarantined")
    v.add_argument("--examples", type=int, default=5, help="example locations shown per issue")
    v.set_defaults(func=_cmd_validate)

    i = sub.add_parser("info", help="counts, split sizes, modalities and coverage")
    common(i, path_required=False)
    i.add_argument("--data", help="a folder with fusionrec.yaml (or the YAML file): read as every command reads it")
    i.add_argument("--dataset", help="a preset name instead of a path (e.g. ml100k-mmrec)")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=_cmd_info)

    c = sub.add_parser("convert", help="write a dataset as RecBole atomic files with its media and features",
                       description="Write a dataset as RecBole atomic files; media files are hard-linked (or "
                                   "copied) and feature .npy files written beside them, with a fusionrec.yaml "
                                   "so that --data OUT loads the same modalities.")
    common(c, path_required=False)
    c.add_argument("--dataset", help="a preset name instead of a path")
    c.add_argument("--data", metavar="DIR_OR_YAML", help=DATA_HELP)
    c.add_argument("--columns", action="append", metavar="ROLE=COL", help="interaction column roles (as validate)")
    c.add_argument("--items", help="item table (default: items.<ext> next to the interactions)")
    c.add_argument("--item-columns", action="append", metavar="ROLE=COL", help="item roles (as validate)")
    c.add_argument("--features", action="append", metavar="NAME=PATH[:KIND]", help="feature .npy files")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--name", help="file stem (default: the dataset name)")
    c.set_defaults(func=_cmd_convert)

    def no_action(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    parser.set_defaults(func=no_action)


__all__ = ["add_parser"]
