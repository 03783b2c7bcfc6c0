"""``fusionrec encode``: compute (or refresh) a dataset's modality features into the feature store.

Examples::

    fusionrec encode --data ./my_shop                       # the encoders of my_shop/fusionrec.yaml
    fusionrec encode --dataset ml1m --modalities text,image
    fusionrec encode --dataset ml100k --modalities text --param "text.template={title}. {overview}"
    fusionrec encode --data ./my_shop --encoder image=clip-image --param image.model_path=/models/clip

It writes exactly what ``fusionrec train`` reads: the same store folder (``$FUSIONREC_CACHE/features``
unless ``--cache``) and, without ``--encoder``/``--param``, the encoders of the data description
(``encoders:``; default text -> minilm, image -> efficientnet-lite0). A second run computes nothing
that is already cached (content-hash keys), so it is the cheap way to pick up new or edited items.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from fusionrec.encoders.ensure import default_store_dir
from fusionrec.errors import UserError


def default_cache_dir() -> Path:
    """The feature store ``train`` reads too: ``$FUSIONREC_CACHE/features`` (default ``~/.cache/fusionrec/features``)."""
    return default_store_dir()


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from fusionrec.cli_args import add_data_arguments

    p = subparsers.add_parser(
        "encode",
        help="encode item text/images/audio/attributes into cached feature vectors",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_data_arguments(p)
    p.add_argument("--modalities", default=None,
                   help="comma-separated modalities to encode (default: those of the data description's "
                   "encoders, else text and image when the items have them)")
    p.add_argument("--encoder", action="append", default=[], metavar="MODALITY=NAME",
                   help="encoder for a modality, e.g. image=clip-image (default: the description's, else "
                   "minilm / efficientnet-lite0 / logmel / attributes)")
    p.add_argument("--param", action="append", default=[], metavar="MODALITY.KEY=VALUE",
                   help="encoder parameter, value parsed as YAML, e.g. \"text.template={title}. {plot}\"")
    p.add_argument("--cache", default=None, help=f"feature store folder (default: {default_cache_dir()})")
    p.add_argument("--no-cache", action="store_true", help="do not read or write the feature store")
    p.add_argument("--batch-size", type=int, default=64, help="items per model call (default 64)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding worker processes for images/audio (default 1: overlaps decoding with the model)")
    p.add_argument("--threads", type=int, default=None, help="torch threads for the model (default: all cores)")
    p.add_argument("--device", default=None, metavar="DEVICE",
                   help="auto | cpu | cuda | cuda:N | mps: where the encoders run (default auto: a GPU when "
                        "there is one); same as --set train.device=DEVICE")
    p.add_argument("--flush-every", type=int, default=1024, help="commit to the store every N new vectors")
    p.add_argument("--report", help="write the run report (counts, throughput, every item issue) as JSON here")
    p.add_argument("--issues", help="write the per-item issues (item_id, modality, file, reason) as CSV here")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                   help="run the encoders on Ray actors (Ray Data map_batches): a cluster address "
                        "(ray://HOST:10001 or HOST:6379), or no value for a local Ray; needs fusionrec[dist]")
    p.add_argument("--ray-workers", type=int, default=2, help="Ray actors (one CPU each) with --ray (default 2)")
    p.set_defaults(func=run)


def parse_encoder_args(
    modalities: list[str] | None, encoder_args: list[str], param_args: list[str],
    declared: dict[str, dict[str, Any]] | None = None,
) -> dict[str, dict[str, Any]]:
    """``--modalities/--encoder/--param`` over the description's encoders -> ``{modality: {name, params}}``.

    ``declared`` is what the data description (or the defaults for its items) names;
    ``--encoder`` replaces a modality's encoder (and its declared params), ``--param`` adds params.
    """
    from fusionrec.encoders.registry import DEFAULT_ENCODERS, available_encoders

    declared = declared or {}
    chosen: dict[str, str] = {}
    for spec in encoder_args:
        if "=" not in spec:
            raise UserError(f"--encoder {spec!r} must look like MODALITY=NAME", fix="e.g. --encoder image=clip-image")
        mod, name = (s.strip() for s in spec.split("=", 1))
        if name not in available_encoders():
            raise UserError(f"unknown encoder {name!r} in --encoder {spec!r}", fix=f"use one of {available_encoders()}")
        chosen[mod] = name
    params = _parse_params(param_args)
    if modalities is None:
        modalities = list(dict.fromkeys([*declared, *chosen]))
        if not modalities:
            raise UserError("nothing to encode: the items have no text or image column and no encoders are named",
                            fix="pass --modalities text,image (with the columns in the data description) or "
                            "name encoders in fusionrec.yaml (encoders: {text: minilm})")
    out: dict[str, dict[str, Any]] = {}
    for mod in modalities:
        base = declared.get(mod, {})
        name = chosen.get(mod) or base.get("name") or DEFAULT_ENCODERS.get(mod)
        if name is None:
            raise UserError(f"no default encoder for modality {mod!r}",
                            fix=f"use one of {sorted(DEFAULT_ENCODERS)} or name one with --encoder {mod}=NAME")
        kept = dict(base.get("params", {})) if name == base.get("name") else {}
        out[mod] = {"name": name, "params": {**kept, **params.pop(mod, {})}}
    if params:
        raise UserError(f"--param for modalities {sorted(params)} that are not being encoded",
                        fix=f"add them to --modalities (now {modalities})")
    return out


def _parse_params(param_args: list[str]) -> dict[str, dict[str, Any]]:
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
    return params


def run(args: argparse.Namespace) -> int:
    import torch

    from fusionrec.cli_args import add_device_override, run_config_from_args
    from fusionrec.data.loading import load_dataset
    from fusionrec.encoders.ensure import build_spec_encoders, encoder_spec
    from fusionrec.encoders.pipeline import encode_dataset

    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size} must be at least 1", fix="e.g. --batch-size 64")
    modalities = None
    if args.modalities is not None:
        modalities = [m.strip() for m in args.modalities.split(",") if m.strip()]
        if not modalities:
            raise UserError("--modalities is empty", fix="e.g. --modalities text,image")
    add_device_override(args)
    cfg = run_config_from_args(args, command="fusionrec encode")
    if args.encoder:  # an unknown encoder name is a mistake worth reporting before loading the data
        parse_encoder_args(modalities or [], args.encoder, [], None)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.ray:
        from fusionrec.encoders.ray_encode import require_ray

        require_ray()  # a missing extra is reported before the data loads
        if args.ray_workers < 1:
            raise UserError(f"--ray-workers {args.ray_workers} must be at least 1", fix="e.g. --ray-workers 2")
    dataset = load_dataset(cfg.data)
    spec = parse_encoder_args(modalities, args.encoder, args.param, encoder_spec(cfg.data, dataset.items))
    encoders = build_spec_encoders(spec, cfg.train.device)   # --device / --set train.device
    store = None if args.no_cache else Path(args.cache).expanduser() if args.cache else default_cache_dir()
    print(f"{dataset!r}\nfeature store: {store or 'none (--no-cache)'}; torch threads: {torch.get_num_threads()}",
          file=sys.stderr)
    report = encode_dataset(
        dataset, encoders, store_dir=store, batch_size=args.batch_size, num_workers=args.workers,
        flush_every=args.flush_every, progress=not args.no_progress,
        ray_workers=args.ray_workers if args.ray else 0,
        ray_address=None if args.ray in (None, "local") else args.ray,
    )
    _print_report(report, args)
    return 0


def _print_report(report: Any, args: argparse.Namespace) -> None:
    print(report.summary())
    issues = report.issues_frame()
    if len(issues):
        # text and attribute problems have no file: show a blank, not None
        shown = issues.head(10).fillna("").to_string(index=False, max_colwidth=70)
        where = f"all in {args.issues}" if args.issues else "write them all with --issues FILE"
        more = f"\n... {len(issues) - 10} more ({where})" if len(issues) > 10 else ""
        print(f"\nitems with a missing modality (they keep their other modalities):\n{shown}{more}")
    if args.issues:
        issues.to_csv(args.issues, index=False)
    if args.report:
        payload = report.as_dict()
        payload["issues"] = [i.as_dict() for i in report.issues]
        Path(args.report).write_text(json.dumps(payload, indent=2, default=str))
