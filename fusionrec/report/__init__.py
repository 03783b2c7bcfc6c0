"""``fusionrec report``: one self-contained HTML page per set of runs.

* :mod:`~fusionrec.report.runs` reads run and ablation folders;
* :mod:`~fusionrec.report.analysis` recomputes breakdowns and beyond-accuracy numbers from the
  saved models; :mod:`~fusionrec.report.projection` makes the 2-D item maps;
  :mod:`~fusionrec.report.examples` picks example users; :mod:`~fusionrec.report.items` finds
  titles, categories and thumbnails;
* :mod:`~fusionrec.report.plots` draws the figures (matplotlib, Agg, inline PNG);
* :mod:`~fusionrec.report.build` and :mod:`~fusionrec.report.sections` assemble the sections,
  :mod:`~fusionrec.report.html` writes the page.
"""
from __future__ import annotations

from typing import Any


def build_report(*args: Any, **kwargs: Any):
    """See :func:`fusionrec.report.build.build_report` (imported lazily: it loads matplotlib and torch)."""
    from fusionrec.report.build import build_report as _build

    return _build(*args, **kwargs)


__all__ = ["build_report"]
