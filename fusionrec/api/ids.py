"""Original ids <-> internal rows for the Python API, with errors that say which id is wrong."""
from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np

from fusionrec.errors import UserError

# how many valid ids an error message shows as examples
SHOWN_IDS = 3


def id_key(value: Any) -> str:
    """The text an id is matched by: ids are strings exactly as given (``"007"`` is not ``7``).

    Numbers a caller passes match their decimal text, and a whole float (ids read by pandas
    from a column with gaps) drops its ``.0``, as serving does.
    """
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def as_id_list(ids: Hashable | Iterable[Hashable]) -> list[Hashable]:
    """One id or a list/array/Series of ids -> a list (a string is one id, not its characters)."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, Iterable):
        return [ids]
    return list(ids)


class IdIndex:
    """One id space (users or items): original ids in internal order and the reverse lookup."""

    def __init__(self, ids: np.ndarray, kind: str, attribute: str) -> None:
        self.ids = ids
        self.kind = kind
        self.attribute = attribute  # where a caller finds the valid ids, e.g. "Recommender.user_ids"
        self._rows = {id_key(v): i for i, v in enumerate(ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, ids: Hashable | Iterable[Hashable], where: str) -> np.ndarray:
        """Internal rows of ``ids`` (in order); a UserError names the first unknown id."""
        wanted = as_id_list(ids)
        if not wanted:
            raise UserError(f"no {self.kind} ids given", where, f"pass one id or a list of ids from {self.attribute}")
        out = np.empty(len(wanted), dtype=np.int64)
        for n, value in enumerate(wanted):
            row = self._rows.get(id_key(value))
            if row is None:
                raise self._unknown(value, where)
            out[n] = row
        return out

    def _unknown(self, value: Any, where: str) -> UserError:
        examples = ", ".join(repr(str(v)) for v in self.ids[:SHOWN_IDS])
        hint = ""
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            hint = " (ids are matched as text: a number loses leading zeros, pass the id as a string)"
        return UserError(
            f"unknown {self.kind} id {value!r}{hint}", where,
            f"use one of the {len(self.ids)} ids in {self.attribute} (e.g. {examples})",
        )
