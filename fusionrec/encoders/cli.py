"""``fusionrec encode``: compute (or refresh) a dataset's modality features into the cache.

Examples::

    fusionrec encode --dataset ml1m --modalities text,image --cache /work/cache/features
    fusionrec encode --dataset ml100k --modalities text --param "text.template={title}. {overview}"
    fusionrec encode --dataset demo --encoder image=clip-image --param image.model_path=/models/clip

A second run computes nothing that is already cached (content-hash keys), so it is
the cheap way to pick up new or edited items.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

import yaml

from fusionrec.errors import UserError


def default_cache_dir() -> Path:
    """``$FUSIONREC_CACHE/features`` (default ``~/.cache/fusionrec/features``)."""
    base = os.environ.get("FUSIONREC_CACHE")
    return (Path(base) if base else Path.home() / ".cache" / "fusionrec") / "features"


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "encode",
        help="encode item text/images/audio/attributes into cached feature vectors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", help="dataset preset (ml100k, ml1m, lastfm2k, demo, ...) or data.name")
    p.add_argument("--config", help="run YAML whose data section describes the dataset")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. data.path=/data/shop (repeatable)")
    p.add_argument("--modalities", default="text,image",
                   help="comma-separated modalities to encode: text,image,audio,attribute (default: text,image)")
    p.add_argument("--encoder", action="append", default=[], metavar="MODALITY=NAME",
                   help="encoder for a modality, e.g. image=clip-image (default: minilm / efficientnet-lite0 / "
                   "logmel / attributes)")
    p.add_argument("--param", action="append", default=[], metavar="MODALITY.KEY=VALUE",
                   help="encoder parameter, value parsed as YAML, e.g. \"text.template={title}. {plot}\"")
    p.add_argument("--cache", default=None, help=f"feature store folder (default: {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature store")
    p.add_argument("--batch-size", type=int, default=64, help="items per model call (default 64)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding worker processes for images/audio (default 1: overlaps decoding with the model)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: all cores)")
    p.add_argument("--flush-every", type=int, default=1024, help="commit to the store every N new vectors")
    p.add_argument("--report", help="write the run report (counts, throughput, every item issue) as JSON here")
    p.add_argument("--issues", help="write the per-item issues (item_id, modality, file, reason) as CSV here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def parse_encoder_args(modalities: list[str], encoder_args: list[str], param_args: list[str]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``--modalities/--encoder/--param`` -> ``{modality: (encoder name, params)}``."""
    from fusionrec.encoders.registry import DEFAULT_ENCODERS, available_encoders

    chosen: dict[str, str] = {}
    for spec in encoder_args:
        if "=" not in spec:
            raise UserError(f"--encoder {spec!r} must look like MODALITY=NAME", fix="e.g. --encoder image=clip-image")
        mod, name = (s.strip() for s in spec.split("=", 1))
        if name not in available_encoders():
            raise UserError(f"unknown encoder {name!r} in --encoder {spec!r}", fix=f"use one of {available_encoders()}")
        chosen[mod] = name
    params: dict[str, dict[str, Any]] = {}
    for spec in param_args:
        if "=" not in spec or "." not in spec.split("=", 1)[0]:
            raise UserError(f"--param {spec!r} must look like MODALITY.KEY=VALUE",
                            fix="e.g. --param text.max_seq_length=128")
        dotted, raw = spec.split("=", 1)
        mod, key = dotted.split(".", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, dict) and "{" in raw:
            value = raw  # "{title}. {plot}" is a template, not a YAML mapping
        params.setdefault(mod.strip(), {})[key.strip()] = value
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for mod in modalities:
        name = chosen.get(mod) or DEFAULT_ENCODERS.get(mod)
        if name is None:
            raise UserError(f"no default encoder for modality {mod!r}",
                            fix=f"use one of {sorted(DEFAULT_ENCODERS)} or name one with --encoder {mod}=NAME")
        out[mod] = (name, params.pop(mod, {}))
    if params:
        raise UserError(f"--param for modalities {sorted(params)} that are not being encoded",
                        fix=f"add them to --modalities (now {modalities})")
    return out


def build_encoders(spec: dict[str, tuple[str, dict[str, Any]]]) -> list:
    from fusionrec.encoders.registry import build_encoders as from_config

    return from_config({mod: {"name": name, **params} for mod, (name, params) in spec.items()})


def load_dataset_for_encoding(dataset: str | None, config: str | None, overrides: list[str]):
    """Resolve the run config's data section and load the dataset (engineer A's loader)."""
    from fusionrec.config import dataset_presets, resolve_config

    if not dataset and not config:
        raise UserError("no dataset given", fix="pass --dataset NAME (e.g. ml1m, demo) or --config run.yaml")
    if dataset and not config and dataset not in dataset_presets():
        # Without a config an unknown name would silently fall back to the demo data.
        raise UserError(f"unknown dataset preset {dataset!r}",
                        fix=f"use one of {dataset_presets()}, or describe your data in --config run.yaml")
    from fusionrec.data.loading import load_dataset

    cfg = resolve_config(config, overrides, dataset=dataset)
    return load_dataset(cfg.data)


def run(args: argparse.Namespace) -> int:
    import torch

    from fusionrec.encoders.pipeline import encode_dataset

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be at least 1")
    modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
    if not modalities:
        raise UserError("--modalities is empty", fix="e.g. --modalities text,image")
    encoders = build_encoders(parse_encoder_args(modalities, args.encoder, args.param))
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_dataset_for_encoding(args.dataset, args.config, args.overrides)
    store = None if args.no_cache else Path(args.cache).expanduser() if args.cache else default_cache_dir()
    print(f"{dataset!r}\nfeature store: {store or 'none (--no-cache)'}; torch threads: {torch.get_num_threads()}",
          file=sys.stderr)
    report = encode_dataset(
        dataset, encoders, store_dir=store, batch_size=args.batch_size, num_workers=args.workers,
        flush_every=args.flush_every, progress=not args.no_progress,
    )
    print(report.summary())
    issues = report.issues_frame()
    if len(issues):
        shown = issues.head(10).to_string(index=False, max_colwidth=70)
        more = f"\n... {len(issues) - 10} more (write them all with --issues FILE)" if len(issues) > 10 else ""
        print(f"\nitems with a missing modality (they keep their other modalities):\n{shown}{more}")
    if args.issues:
        issues.to_csv(args.issues, index=False)
    if args.report:
        payload = report.as_dict()
        payload["issues"] = [i.as_dict() for i in report.issues]
        Path(args.report).write_text(json.dumps(payload, indent=2, default=str))
    return 0
