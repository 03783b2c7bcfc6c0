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

from fusionrec import output
from fusionrec.allocator import keep_freed_memory
from fusionrec.errors import UserError

# subcommand -> (module with add_parser(subparsers), one-line summary). Only the module
# of the subcommand being run is imported, so `fusionrec data validate` does not pay for
# torch/faiss imports of other stages; `fusionrec --help` imports nothing heavy.
SUBCOMMANDS: dict[str, str] = {
    "demo": "fusionrec.pipeline",
    "train": "fusionrec.pipeline",
    "evaluate": "fusionrec.pipeline",
    "data": "fusionrec.data.cli",
    "encode": "fusionrec.encoders.cli",
    "serve": "fusionrec.serve.cli",
    "ablate": "fusionrec.experiments.ablate",
    "models": "fusionrec.models.cli",
    "report": "fusionrec.report.cli",
}
SUMMARIES: dict[str, str] = {
    "demo": "generate the built-in synthetic shop and run the pipeline on it",
    "train": "train and evaluate a model on a dataset (valid-only selection, test once)",
    "evaluate": "evaluate a saved model on a split",
    "data": "describe a folder (data init), validate, inspect and convert datasets",
    "encode": "encode item text/images/audio/attributes into the feature store",
    "serve": "start the HTTP recommendation service",
    "ablate": "run modality x fusion x alignment ablations and write one table",
    "models": "list the models; show a model's parameters, types, defaults and meanings",
    "report": "write one self-contained HTML report (curves, breakdowns, maps, example users) of runs",
}

DESCRIPTION = (
    "Multimodal recommendation with pretrained encoders. Typical flow on your own folder: "
    "`fusionrec data init DIR` (writes DIR/fusionrec.yaml) -> `fusionrec data validate --data DIR` -> "
    "`fusionrec train --data DIR --model mmgraph` -> `fusionrec serve --model runs/<run>/model`. "
    "`fusionrec demo` runs the whole pipeline on built-in synthetic data. "
    "`fusionrec COMMAND --help` explains each command."
)


def _chosen_command(argv: list[str]) -> str | None:
    for token in argv:
        if token.startswith("-"):
            continue
        return token if token in SUBCOMMANDS else None
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; with ``argv`` naming a subcommand only that subcommand's module is imported."""
    parser = argparse.ArgumentParser(prog="fusionrec", description=DESCRIPTION, allow_abbrev=False)
    output.add_output_arguments(parser, top_level=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = _chosen_command(argv) if argv is not None else None
    if chosen is None and argv is not None:
        # top-level help or an unknown command: summaries only, no stage imports
        for name, summary in SUMMARIES.items():
            sub.add_parser(name, help=summary)
        return parser
    modules = [SUBCOMMANDS[chosen]] if chosen else list(dict.fromkeys(SUBCOMMANDS.values()))
    for module_name in modules:
        importlib.import_module(module_name).add_parser(sub)
    _add_output_flags_everywhere(sub)
    return parser


def _add_output_flags_everywhere(sub: argparse._SubParsersAction) -> None:
    """-v/-q on every (nested) subcommand, so they work anywhere on the command line.

    Abbreviated options are switched off too: with them, ``--data DIR`` on a command that has
    only ``--dataset`` was silently read as ``--dataset DIR``.
    """
    for child in dict.fromkeys(sub.choices.values()):  # aliases share one parser
        child.allow_abbrev = False
        output.add_output_arguments(child)
        for action in child._actions:
            if isinstance(action, argparse._SubParsersAction):
                _add_output_flags_everywhere(action)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    keep_freed_memory()  # why: fusionrec/allocator.py (encoding and training page-fault less)
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    output.configure(verbose=getattr(args, "verbose", 0), quiet=getattr(args, "quiet", False))
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
    except BrokenPipeError:
        # the reader of our output went away (`fusionrec data validate --json | head`): not an error of
        # ours. Point stdout at devnull so the interpreter's final flush does not fail again (the
        # recipe of Python's signal docs); stderr stays open for anything that still has to be said.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
