"""The public Python API: ``fusionrec.load_data`` and ``fusionrec.Recommender``.

See ``docs/guide/python-api.md``. Everything here speaks the dataset's original ids.
"""
from __future__ import annotations

from fusionrec.api.data import load_data
from fusionrec.api.recommender import Recommender

__all__ = ["Recommender", "load_data"]
