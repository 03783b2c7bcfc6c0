"""``fusionrec data init DIR``: inspect a dataset folder and write ``DIR/fusionrec.yaml``.

The inspection (:mod:`fusionrec.data.describe`) prints every file and column with the role
it guessed and why; the YAML (:mod:`fusionrec.data.describe_yaml`) records the same with
comments, and leaves what it could not decide as ``# TODO:`` lines. An existing
``fusionrec.yaml`` is never overwritten without ``--force``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from fusionrec.errors import UserError

if TYPE_CHECKING:  # the inspection modules read tables: imported when a command runs, not at parser build
    from fusionrec.data.describe import Description

DESCRIPTION_FILE = "fusionrec.yaml"


def add_init_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``data init`` on the ``fusionrec data`` sub-parsers."""
    p = sub.add_parser(
        "init", help=f"inspect a dataset folder and write DIR/{DESCRIPTION_FILE} (roles of every column)",
        description="Inspect DIR (interaction file, optional item and user tables, media folders, .npy "
                    f"features, MMRec and RecBole layouts), print what every column was taken for and why, "
                    f"and write DIR/{DESCRIPTION_FILE}. Every command then reads it with --data DIR.")
    p.add_argument("dir", metavar="DIR", help="the dataset folder")
    p.add_argument("--force", action="store_true", help=f"overwrite an existing {DESCRIPTION_FILE}")
    p.add_argument("--name", help="dataset name (default: the folder's name)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print the YAML instead of writing it")
    p.set_defaults(func=run_init)


def write_description(folder: str | Path, force: bool = False, name: str | None = None) -> tuple[Path, Description]:
    """Inspect ``folder`` and write its description; returns the file and what was decided."""
    from fusionrec.data.describe import describe_folder
    from fusionrec.data.describe_yaml import render_yaml

    folder = Path(folder).expanduser()
    target = folder / DESCRIPTION_FILE
    if target.exists() and not force:
        raise UserError(f"{DESCRIPTION_FILE} already exists", str(target),
                        f"edit it, or rewrite it with `fusionrec data init {folder} --force`")
    desc = describe_folder(folder, name=name)
    target.write_text(render_yaml(desc), encoding="utf-8")
    return target, desc


def run_init(args: argparse.Namespace) -> int:
    if args.print_only:
        from fusionrec.data.describe import describe_folder
        from fusionrec.data.describe_yaml import render_yaml

        desc = describe_folder(args.dir, name=args.name)
        print(desc.report(), file=sys.stderr)
        print(render_yaml(desc), end="")
        return 0
    target, desc = write_description(args.dir, force=args.force, name=args.name)
    print(desc.report())
    todo = len(desc.todos)
    print(f"wrote {target}" + (f" with {todo} TODO line(s) to decide" if todo else ""))
    folder = args.dir
    print(f"next: fusionrec data validate --data {folder}   then   "
          f"fusionrec train --data {folder} --model {desc.suggested_model}")
    return 0


__all__ = ["add_init_parser", "run_init", "write_description"]
