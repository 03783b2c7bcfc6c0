"""User-facing errors: the CLI prints these as one clear message, never a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A problem with the user's input: says what is wrong, where, and how to fix it.

    ``where`` is a location such as ``"items.csv line 12, column 'rating'"``.
    """

    def __init__(self, what: str, where: str | None = None, fix: str | None = None) -> None:
        self.what = what
        self.where = where
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        parts = [f"error: {self.what}"]
        if self.where:
            parts.append(f"  where: {self.where}")
        if self.fix:
            parts.append(f"  fix:   {self.fix}")
        return "\n".join(parts)
