"""The configuration reference (``docs/reference/configuration.md``), generated from the typed configs.

Everything in it comes from code: the run configuration's sections
(:class:`fusionrec.config.RunConfig` and its nested pydantic classes) and every
registered model's ``Params``, each field with its type, default and one-line
description. Nothing is written by hand, so the reference cannot drift from the
code; ``tests/models/test_reference.py`` fails when the committed file is stale.

Refresh it with either of::

    fusionrec models reference --write docs/reference/configuration.md
    python -m fusionrec.models.reference > docs/reference/configuration.md
"""
from __future__ import annotations

import sys
from pathlib import Path

from pydantic import BaseModel

from fusionrec.models.params import ParamRow, nested_sections, param_rows
from fusionrec.models.registry import KINDS, available_models, model_class, model_entry

REFERENCE_PATH = Path("docs") / "reference" / "configuration.md"
REFRESH_COMMAND = f"fusionrec models reference --write {REFERENCE_PATH.as_posix()}"


def _cell(text: str) -> str:
    """Markdown table cell: a literal ``|`` (type unions, choices) must not split the column."""
    return text.replace("|", "\\|").replace("\n", " ")


def _table(rows: list[ParamRow], prefix: str = "") -> list[str]:
    if not rows:
        return ["No parameters.", ""]
    out = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for r in rows:
        out.append(f"| `{prefix}{r.name}` | {_cell(r.type)} | `{_cell(r.default)}` | {_cell(r.description)} |")
    return [*out, ""]


def _section(title: str, cls: type[BaseModel], path: str) -> list[str]:
    """One run-config section (and, after it, each nested section) as markdown tables."""
    nested = nested_sections(cls)
    rows = [ParamRow(r.name, r.type, f"see {path}{r.name}" if r.name in nested else r.default, r.description)
            for r in param_rows(cls)]
    doc = (cls.__doc__ or "").strip().splitlines()
    lines = [f"### `{title}`", ""]
    if doc and cls.__doc__ != BaseModel.__doc__:
        lines += [doc[0], ""]
    lines += _table(rows, path)
    for name, sub in nested.items():
        lines += _section(f"{path}{name}", sub, f"{path}{name}.")
    return lines


def run_config_reference() -> list[str]:
    """The run configuration: every RunConfig section with its fields."""
    from fusionrec.config import (
        RunConfig,  # local: keeps `fusionrec models` listing light
    )

    lines = ["## Run configuration", "",
             ("A run file (`--config run.yaml`), a data description (`--data DIR`, its `fusionrec.yaml`) and "
             "`--set section.key=value` set these; `model.params` is the chosen model's parameters "
             "(next section)."), ""]
    top = [r for r in param_rows(RunConfig) if r.name not in nested_sections(RunConfig)]
    if top:
        lines += ["### top level", "", *_table(top)]
    for name, cls in nested_sections(RunConfig).items():
        lines += _section(name, cls, f"{name}.")
    return lines


def model_reference(name: str) -> list[str]:
    """One model: what it is, and its parameters (``model.params.*``)."""
    entry = model_entry(name)
    cls = model_class(name)
    lines = [f"### `{name}` ({entry.kind})", "", f"{entry.summary}.", "",
             f"Class `{entry.target}`; batches: `{cls.batch_kind}`; "
             + ("trained by gradient" if cls.trainable else "fitted in closed form")
             + ("; reads item content." if cls.uses_content else "."), ""]
    lines += _table(param_rows(cls.Params), "")
    # nested sections (e.g. a cascade's retriever and ranker stages), one table per class
    groups: dict[type[BaseModel], list[str]] = {}
    for field, sub in nested_sections(cls.Params).items():
        groups.setdefault(sub, []).append(field)
    for sub, fields in groups.items():
        lines += [" and ".join(f"`{f}`" for f in fields) + " entries:", "", *_table(param_rows(sub), "")]
    return lines


def render_reference() -> str:
    """The whole reference as markdown (what ``docs/reference/configuration.md`` must contain)."""
    lines = ["# Configuration reference", "",
             (f"Generated from the typed configuration classes by `{REFRESH_COMMAND}`; do not edit by hand "
             "(a test fails when this file is stale)."), "",
             ("Every key can be set in a run YAML file or with `--set section.key=value` (values are parsed "
             "as YAML, e.g. `--set model.params.embedding_size=32`). Unknown keys are errors that name the "
             "closest valid key."), ""]
    lines += run_config_reference()
    lines += ["## Models", "",
              ("Set with `--model NAME` and `--set model.params.KEY=VALUE`; `fusionrec models show NAME` prints "
              "the same table. A dataset preset may override some defaults under `model_params: {NAME: {...}}`."),
              ""]
    for kind in KINDS:
        for name in available_models():
            if model_entry(name).kind == kind:
                lines += model_reference(name)
    return "\n".join(lines).rstrip() + "\n"


def write_reference(path: str | Path = REFERENCE_PATH) -> Path:
    """Write :func:`render_reference` to ``path`` (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_reference())
    return path


if __name__ == "__main__":
    sys.stdout.write(render_reference())
