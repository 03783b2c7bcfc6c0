"""``fusionrec report RUN_DIR [RUN_DIR ...] [--out FILE]``."""
from __future__ import annotations

import argparse

from fusionrec.report.projection import DEFAULT_MAX_ITEMS, METHODS


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``fusionrec report``."""
    p = subparsers.add_parser(
        "report", help="write one self-contained HTML report (plots inline) of run / ablation folders",
        description="Read run folders of `fusionrec train` (and --runs folders of `fusionrec ablate`) and write "
                    "one HTML file that opens offline: metrics over seeds side by side, training curves, "
                    "warm/cold, popularity and history-length breakdowns, coverage/novelty/diversity and "
                    "popularity bias, ablation bars, 2-D maps of item vectors, and a few users with their "
                    "last items and top-10 recommendations. Guide: docs/guide/report.md.")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                   help="run folder(s) printed by `fusionrec train`, or the --runs folder of `fusionrec ablate`")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="HTML file to write (default: report.html in the first RUN_DIR)")
    p.add_argument("--k", type=int, default=None, help="cutoff K of the breakdowns (default 20, or the largest "
                                                       "of the run's eval.ks)")
    p.add_argument("--users", type=int, default=4, help="how many example users to show (default 4)")
    p.add_argument("--map-items", type=int, default=DEFAULT_MAX_ITEMS,
                   help=f"items drawn in the 2-D maps (default {DEFAULT_MAX_ITEMS}; t-SNE time grows with it)")
    p.add_argument("--map", dest="map_method", choices=METHODS, default="tsne",
                   help="projection of the maps: tsne (scikit-learn) or umap (needs umap-learn)")
    p.add_argument("--color-by", dest="colour_by", default=None, metavar="COLUMN",
                   help="item column to colour the maps by (default: a category-like column, when there is one)")
    p.set_defaults(func=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from fusionrec.report.build import ReportOptions, build_report

    options = ReportOptions(k=args.k, n_users=args.users, map_items=args.map_items, map_method=args.map_method,
                            colour_by=args.colour_by)
    path = build_report(args.run_dirs, args.out, options)
    print(f"report: {path}")
    return 0
