"""``fusionrec models``: list the models, show one model's parameters, write the configuration reference.

* ``fusionrec models`` (or ``models list``): one line per model -- name, kind
  (ID-only / multimodal / ranker) and what it is. Reads only the registry table,
  so it imports no model (and no torch);
* ``fusionrec models show NAME``: every parameter with its type, default and meaning;
* ``fusionrec models reference [--write PATH]``: the generated configuration
  reference (run config sections + every model's parameters) as markdown.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from fusionrec.models.params import ParamRow, nested_sections, param_rows
from fusionrec.models.registry import KINDS, available_models, model_class, model_entry


def list_models() -> str:
    """One line per registered model, grouped by kind."""
    names = available_models()
    width = max(len(n) for n in names) + 2
    lines = [f"{'model':<{width}}{'kind':<12}what it is"]
    for kind in KINDS:
        for name in names:
            entry = model_entry(name)
            if entry.kind == kind:
                lines.append(f"{name:<{width}}{kind:<12}{entry.summary}")
    lines.append("")
    lines.append("`fusionrec models show NAME` lists a model's parameters; set them with "
                 "--set model.params.KEY=VALUE.")
    return "\n".join(lines)


def show_model(name: str) -> str:
    """A model's kind, summary and parameter table (type, default, meaning)."""
    entry = model_entry(name)
    cls = model_class(name)
    how = "trained by gradient" if cls.trainable else "fitted in closed form"
    content = "reads item content (modalities)" if cls.uses_content else "IDs only"
    lines = [f"{name} ({entry.kind}): {entry.summary}",
             f"  {entry.target}; {how}; {content}; batches: {cls.batch_kind}", ""]
    rows = param_rows(cls.Params)
    if not rows:
        lines.append("no parameters")
        return "\n".join(lines)
    lines += _param_table(rows, "parameter")
    # nested entries (a cascade's retriever / ranker stage): their own keys
    for field, sub in nested_sections(cls.Params).items():
        lines += ["", *_param_table(param_rows(sub), f"{field}.KEY")]
    lines += ["", (f"set with --set model.params.KEY=VALUE (e.g. --set model.params.{rows[0].name}="
                   f"{rows[0].default}) or under model: params: in a run YAML.")]
    return "\n".join(lines)


def _param_table(rows: list[ParamRow], head: str) -> list[str]:
    """Aligned columns: name, type, default, meaning."""
    w_name = max(len(head), *(len(r.name) for r in rows)) + 2
    w_type = min(max(len("type"), *(len(r.type) for r in rows)) + 2, 44)
    w_def = min(max(len("default"), *(len(r.default) for r in rows)) + 2, 24)
    lines = [_pad(head, w_name) + _pad("type", w_type) + _pad("default", w_def) + "meaning"]
    for r in rows:
        lines.append(_pad(r.name, w_name) + _pad(r.type, w_type) + _pad(r.default, w_def) + r.description)
    return lines


def _pad(text: str, width: int) -> str:
    # a text longer than its column keeps its full length, then two spaces (never runs into the next)
    return text.ljust(width) if len(text) < width - 1 else text + "  "


def _run(args: argparse.Namespace) -> int:
    action = getattr(args, "models_command", None) or "list"
    if action == "list":
        print(list_models())
    elif action == "show":
        print(show_model(args.name))
    else:
        from fusionrec.models.reference import render_reference, write_reference

        if args.write:
            path = write_reference(args.write)
            print(f"wrote {path}", file=sys.stderr)
        else:
            sys.stdout.write(render_reference())
    return 0


def add_parser(subparsers: Any) -> None:
    """Register ``fusionrec models`` and its actions."""
    parser = subparsers.add_parser(
        "models", help="list the models; show a model's parameters",
        description="Models and their typed parameters. Without an action: the list of models.")
    parser.set_defaults(func=_run)
    sub = parser.add_subparsers(dest="models_command", metavar="ACTION")
    sub.add_parser("list", help="one line per model: name, kind, what it is")
    show = sub.add_parser("show", help="a model's parameters: type, default, meaning")
    show.add_argument("name", help=f"model name ({', '.join(available_models())})")
    ref = sub.add_parser("reference", help="the configuration reference (run config + every model) as markdown")
    ref.add_argument("--write", metavar="PATH",
                     help="write it to PATH (docs/reference/configuration.md) instead of printing it")
