"""``fusionrec ablate``: modality subsets x fusion methods x alignment on/off, one table.

Every variant is run through :func:`fusionrec.pipeline.run_experiment` (the same
seeds, early stopping on **valid**, test scored once per seed), so the table is
directly comparable with ``fusionrec train`` runs. The result is one row per
variant with test metrics as mean ± sample std over seeds, written as markdown
and JSON.

Library use (engineer F2's benchmark tables use this)::

    from fusionrec.experiments.ablate import run_ablation
    df = run_ablation(cfg, {"modalities": [["text"], ["image"], ["text", "image"]],
                            "fusion": ["concat", "attention"], "align": ["on", "off"]}, seeds=[1, 2, 3])

Grid keys: ``modalities`` (list of subsets; a subset is a list of names, a
comma-joined string, ``"all"``, or ``"none"``/``[]`` for an ID-only model),
``fusion``, ``align`` (``on``/``off`` or a method name), ``model`` (model
names), and any dotted config path such as ``"model.params.history"`` or
``"train.lr"``. Single-modality variants are run once (fusion has nothing to
fuse), not once per fusion method.
"""
from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from fusionrec.cli_args import add_data_arguments, run_config_from_args
from fusionrec.config import RunConfig, deep_merge, resolve_config
from fusionrec.data.dataset import Dataset
from fusionrec.errors import UserError

TABLE_METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
DEFAULT_ALIGN_METHOD = "infonce"


# ---------------------------------------------------------------------- grid
def _subset(value: Any) -> list[str] | None:
    """Normalise a modality subset: None = all, [] = none (ID only)."""
    if value is None or value == "all":
        return None
    if value in ("none", "", "id"):
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _label(value: Any) -> str:
    if value is None:
        return "all"
    if isinstance(value, (list, tuple)):
        return "+".join(map(str, value)) if value else "none (ID only)"
    return str(value)


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """Cartesian product of the grid, dropping variants that differ only by an inapplicable knob."""
    keys = list(grid)
    for k in keys:
        if isinstance(grid[k], (str, bytes)) or not isinstance(grid[k], Sequence) or not grid[k]:
            raise UserError(f"ablation grid entry {k!r} must be a non-empty list, got {grid[k]!r}",
                            "ablation grid", f"e.g. {{'{k}': [...]}}")
    variants, seen = [], set()
    for combo in itertools.product(*(grid[k] for k in keys)):
        v = dict(zip(keys, combo))
        if "modalities" in v:
            v["modalities"] = _subset(v["modalities"])
            n_mod = None if v["modalities"] is None else len(v["modalities"])
            if n_mod is not None and n_mod <= 1 and "fusion" in v:
                v["fusion"] = grid["fusion"][0] if n_mod == 1 else "-"   # nothing to fuse
            if n_mod == 0 and "align" in v:
                v["align"] = "off"                                      # nothing to align
        key = tuple((k, _label(v[k])) for k in keys)
        if key not in seen:
            seen.add(key)
            variants.append(v)
    return variants


def variant_config(base: RunConfig, variant: Mapping[str, Any], seeds: Sequence[int]) -> RunConfig:
    """The RunConfig of one variant (model defaults re-resolved when the model changes)."""
    layered = base.model_dump(mode="json")
    if "model" in variant and variant["model"] != base.model.name:
        fresh = resolve_config(dataset=None, model=str(variant["model"]))
        layered["model"] = {"name": str(variant["model"]), "params": deep_merge(fresh.model.params, {})}
    params = layered["model"]["params"]
    for key, value in variant.items():
        if key == "model":
            continue
        if key == "modalities":
            layered["data"]["modalities"] = value
            if value == []:
                if "use_content" not in params:
                    raise UserError(f"model {layered['model']['name']!r} cannot run without content",
                                    "ablation grid 'modalities'", "drop 'none' from the modality subsets")
                params["use_content"] = False
            # other subsets keep the configured use_content: a graph-only mmgraph (modality kNN graphs,
            # no projected content) must stay graph-only when its modalities are ablated
            continue
        if key in ("fusion", "align"):
            if key not in params:
                raise UserError(
                    f"model {layered['model']['name']!r} has no {key!r} parameter to ablate",
                    f"ablation grid {key!r}", "use a multimodal model such as two_tower, or drop this axis")
            if key == "fusion" and value == "-":
                continue
            if key == "align":
                on = str(value).lower()
                if on in ("on", "true", "yes", "1"):
                    value = params["align"] if params["align"] not in (None, "none") else DEFAULT_ALIGN_METHOD
                elif on in ("off", "false", "no", "0"):
                    value = "none"
            params[key] = value
            continue
        node = layered
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    layered["train"]["seeds"] = [int(s) for s in seeds]
    return RunConfig.model_validate(layered)


# ---------------------------------------------------------------------- run
def run_ablation(
    base_cfg: RunConfig,
    grid: Mapping[str, Sequence[Any]],
    seeds: Sequence[int],
    dataset: Dataset | None = None,
    out_dir: str | Path | None = None,
    verbose: bool = False,
    metrics: Sequence[str] = TABLE_METRICS,
    on_row: Callable[[pd.DataFrame], None] | None = None,
) -> pd.DataFrame:
    """Run every variant of ``grid`` over ``seeds``; one DataFrame row per variant.

    Columns: the grid keys (readable labels), ``<metric>`` and ``<metric>_std`` for
    the test metrics, ``valid_<valid_metric>``, ``best_epoch``, ``s_per_epoch``,
    ``total_s`` (mean over seeds) and ``run_dir``. ``on_row(partial_df)`` is called after
    every variant (the CLI rewrites its table then, so a long grid leaves usable output).
    """
    from fusionrec.pipeline import check_run_config, load_data, run_experiment

    if not seeds:
        raise UserError("no seeds given", "fusionrec ablate --seeds", "pass --seeds 3 or --seeds 1,2,3")
    check_run_config(base_cfg)  # before loading (and encoding) the data
    if dataset is None:
        dataset = load_data(base_cfg)
    out = Path(out_dir) if out_dir is not None else Path(base_cfg.output_dir) / f"ablate_{dataset.name}"
    rows = []
    variants = expand_grid(grid)
    for i, variant in enumerate(variants):
        cfg = variant_config(base_cfg, variant, seeds)
        name = "_".join(f"{_label(v)}" for v in variant.values()).replace("/", "-").replace(" ", "")
        t0 = time.perf_counter()
        res = run_experiment(cfg, dataset, run_dir=out / f"{i:02d}_{name}", verbose=verbose)
        row: dict[str, Any] = {k: _label(v) for k, v in variant.items()}
        for m in metrics:
            if m in res["test"]:
                row[m] = res["test"][m]["mean"]
                row[f"{m}_std"] = res["test"][m]["std"]
        vm = cfg.train.valid_metric
        if vm in res["valid"]:
            row[f"valid_{vm}"] = res["valid"][vm]["mean"]
        row["best_epoch"] = res["timing"]["best_epoch"]["mean"]
        row["s_per_epoch"] = res["timing"]["seconds_per_epoch"]["mean"]
        row["total_s"] = res["timing"]["total_seconds"]["mean"]
        row["run_dir"] = res["run_dir"]
        row["n_seeds"] = len(seeds)  # one seed: its value alone in the table, no "± 0.0000"
        rows.append(row)
        if on_row is not None:
            on_row(pd.DataFrame(rows))
        if verbose:
            print(f"[ablate {i + 1}/{len(variants)}] {row} ({time.perf_counter() - t0:.0f}s)", file=sys.stderr)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------- tables
def ablation_markdown(df: pd.DataFrame, title: str, notes: Sequence[str] = (),
                      metrics: Sequence[str] = TABLE_METRICS) -> str:
    """Markdown table: variant columns, test metrics as mean ± std (best in bold), valid score, timing."""
    from fusionrec.evaluate.report import MeanStd, format_cell

    keys = [c for c in df.columns if c not in metrics and not c.endswith("_std") and not c.startswith("valid_")
            and c not in ("best_epoch", "s_per_epoch", "total_s", "run_dir", "n_seeds")]
    metrics = [m for m in metrics if m in df.columns]
    valid_cols = [c for c in df.columns if c.startswith("valid_")]
    best = {m: df[m].max() for m in metrics}
    header = keys + [f"test {m}" for m in metrics] + valid_cols + ["best epoch", "s/epoch"]
    lines = [f"# {title}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] * len(keys) + ["---:"] * (len(header) - len(keys))) + "|"]
    for _, r in df.iterrows():
        cells = [str(r[k]) for k in keys]
        for m in metrics:
            c = format_cell(MeanStd(r[m], r[f"{m}_std"], r.get("n_seeds")))
            cells.append(f"**{c}**" if r[m] == best[m] else c)
        cells += [f"{r[c]:.4f}" for c in valid_cols]
        cells += [f"{r['best_epoch']:.0f}", f"{r['s_per_epoch']:.2f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += list(notes)
    return "\n".join(lines) + "\n"


def write_ablation(df: pd.DataFrame, path_stem: str | Path, title: str, notes: Sequence[str] = ()) -> tuple[Path, Path]:
    """Write ``<stem>.md`` and ``<stem>.json``; returns both paths."""
    from fusionrec.evaluate.report import write_json

    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    md = stem.with_suffix(".md")
    md.write_text(ablation_markdown(df, title, notes))
    js = write_json({"title": title, "notes": list(notes), "rows": df.to_dict(orient="records")},
                    stem.with_suffix(".json"))
    return md, js


# ---------------------------------------------------------------------- CLI
def _parse_seeds(text: str) -> list[int]:
    text = str(text).strip()
    if "," in text:
        return [int(s) for s in text.split(",") if s.strip()]
    n = int(text)
    if n < 1:
        raise UserError(f"--seeds {text} must be >= 1", "fusionrec ablate --seeds", "e.g. --seeds 3")
    return [2024 + i for i in range(n)]


def _split_list(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    out: list[str] = []
    for v in values:
        out += [x.strip() for x in v.split(",") if x.strip()]
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``fusionrec ablate``."""
    p = subparsers.add_parser(
        "ablate", help="modality subsets x fusion methods x alignment on/off, one table (mean ± std over seeds)",
        description="Run a grid of variants of one model through the standard protocol (early stopping on "
                    "valid, test once per seed) and write one markdown + JSON table.")
    add_data_arguments(p)  # --data DIR, --dataset PRESET, --config run.yaml, --set (applied to every variant)
    p.add_argument("--model", default="two_tower", help="model name (default two_tower)")
    p.add_argument("--modalities", nargs="*", default=None,
                   help="modality subsets, each comma-joined: e.g. --modalities text image text,image "
                        "('none' = ID only; default: each single modality and all together)")
    p.add_argument("--fusions", nargs="*", default=None, help="fusion methods, e.g. concat,attention,gated")
    p.add_argument("--align", nargs="*", default=None, help="alignment settings, e.g. on,off or infonce,cca")
    p.add_argument("--seeds", default="3", help="number of seeds (2024, 2025, ...) or a list like 1,2,3")
    p.add_argument("--out", default=None, help="table path stem (default docs/benchmarks/ablation_<dataset>)")
    p.add_argument("--runs", default=None, help="folder for the run directories (default runs/ablate_<dataset>)")
    p.add_argument("--title", default=None)
    p.set_defaults(func=_cmd_ablate)


def _cmd_ablate(args: argparse.Namespace) -> int:
    cfg = run_config_from_args(args, model=args.model, command="fusionrec ablate")
    from fusionrec.pipeline import check_run_config

    check_run_config(cfg)  # a wrong model / valid_metric stops here, before the data is loaded
    dataset = None
    if cfg.data.format == "demo":
        from fusionrec.experiments.multimodal_demo import multimodal_demo_dataset

        dataset = multimodal_demo_dataset(**cfg.data.demo, split=cfg.data.split)
    grid: dict[str, list[Any]] = {}
    if args.modalities is not None:
        grid["modalities"] = args.modalities
    else:
        from fusionrec.pipeline import load_data

        dataset = dataset if dataset is not None else load_data(cfg)
        names = cfg.data.modalities or list(dataset.modalities)
        grid["modalities"] = [[n] for n in names] + ([names] if len(names) > 1 else [])
    fusions = _split_list(args.fusions)
    if fusions:
        grid["fusion"] = fusions
    align = _split_list(args.align)
    if align:
        grid["align"] = align
    seeds = _parse_seeds(args.seeds)
    runs = args.runs or str(Path(cfg.output_dir) / f"ablate_{cfg.data.name}")
    stem = args.out or f"docs/benchmarks/ablation_{cfg.data.name}"
    title = args.title or f"Ablation: {cfg.model.name} on {cfg.data.name}"
    # argv[1:] starts with "ablate" both for the console script and for `python -m fusionrec.cli`
    command = "fusionrec " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["ablate"] else None
    notes = [
        (f"Protocol `{cfg.eval.protocol}`, candidates `{cfg.eval.candidates}`; model selected on valid "
         f"`{cfg.train.valid_metric}` with early stopping (patience {cfg.train.patience}); test scored once per "
         "seed."),
        (f"Seeds {seeds}; cells are mean ± sample std over seeds. Single-modality rows have nothing to fuse "
         "and are run once. s/epoch is wall time on a shared machine (noisy)."),
    ]
    if command:
        notes.append(f"Command: `{command}`")
    n_variants = len(expand_grid(grid))

    def partial(df: pd.DataFrame) -> None:
        extra = [] if len(df) == n_variants else [f"(partial: {len(df)} of {n_variants} variants done)"]
        write_ablation(df, stem, title, notes + extra)

    df = run_ablation(cfg, grid, seeds, dataset=dataset, out_dir=runs, verbose=True, on_row=partial)
    md, js = write_ablation(df, stem, title, notes)
    print(md.read_text())
    print(f"wrote {md} and {js}")
    print(f"report: fusionrec report {shlex.quote(str(runs))}")
    return 0
