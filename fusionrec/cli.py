"""``fusionrec`` command line: one subcommand per stage of the pipeline.

Each subcommand lives in the module of its stage and exposes
``add_parser(subparsers)``, which registers itself and sets ``func``; this file
only wires them together and turns :class:`~fusionrec.errors.UserError` into a
clear message with exit code 2 (no traceback for a user's mistake).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from fusionrec.errors import UserError

# subcommand -> module with add_parser(subparsers); imported lazily so that
# `fusionrec --help` stays fast and one stage's heavy imports stay out of the others.
SUBCOMMANDS: dict[str, str] = {
    "demo": "fusionrec.pipeline",
    "train": "fusionrec.pipeline",
    "evaluate": "fusionrec.pipeline",
    "data": "fusionrec.data.cli",
    "encode": "fusionrec.encoders.cli",
    "serve": "fusionrec.serve.cli",
    "ablate": "fusionrec.experiments.ablate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fusionrec",
        description=(
            "Multimodal recommendation with pretrained encoders. Typical flow: "
            "`fusionrec data validate` -> `fusionrec encode` -> `fusionrec train` -> "
            "`fusionrec serve`. `fusionrec demo` runs the whole pipeline on built-in synthetic data."
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in dict.fromkeys(SUBCOMMANDS.values()):
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            # Only a subcommand module that is absent altogether is skipped (a partial
            # install); any other import error is a real bug and propagates.
            # tests/test_cli.py asserts every registered module imports.
            if err.name != module_name:
                raise
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        result = args.func(args)
    except UserError as err:
        print(err.message, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
