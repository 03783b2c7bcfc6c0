"""Column sniffing for ``fusionrec data init``: what a column holds, and which role that suggests.

Names come first, through the one role table (:mod:`fusionrec.data.roles`); content decides
what names cannot: dates in any common form (``2020-09-01`` included), small numeric
ranges (ratings), 0/1 values (labels), split names, long many-word strings (text), low
cardinality (attributes) and file names ending in a media extension (image / audio paths).
Every guess carries the reason printed to the user.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fusionrec.data.media import MEDIA_EXTENSIONS
from fusionrec.data.roles import ROLE_ALIASES, SPLIT_VALUES, find_column
from fusionrec.data.validation.dates import parse_dates

# content checks look at this many non-empty values per column (dates parse one by one)
CONTENT_SAMPLE = 1000
DATE_SHARE = 0.9          # a text column is a timestamp when this share parses as dates
MEDIA_SHARE = 0.5         # a column is a media path column when this share ends in a media extension
TEXT_WORDS = 3.0          # mean words per value from which a string column reads as text
ATTRIBUTE_MAX_UNIQUE = 200

_USER_WORDS = re.compile(r"(user|customer|visitor|member|client|account|buyer|viewer|listener|reader|person)",
                         re.IGNORECASE)
_ITEM_WORDS = re.compile(r"(item|article|product|movie|film|track|song|book|sku|asin|artist|video|news|poi|"
                         r"business|recipe|game|anime|app|course|job|restaurant|hotel|listing)", re.IGNORECASE)
_ID_SUFFIX = re.compile(r"(^|[_\s-])(id|code|key|no)$|Id$|ID$", re.IGNORECASE)
_TIME_WORDS = re.compile(r"(time|date|dat$|(^|_)ts$|stamp|day|created|when)", re.IGNORECASE)
_DATE_LIKE = re.compile(r"\d{1,4}[-/.:]\d{1,2}|\d{1,2} ?[A-Za-z]{3,9},? \d{2,4}|[A-Za-z]{3,9} \d{1,2},? \d{2,4}")
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_LABEL_WORDS = re.compile(r"(label|click|target|like|purchased|bought|converted|positive)", re.IGNORECASE)


@dataclass
class Guess:
    """One decision of ``data init``: ``column`` of ``table`` -> ``role`` because ``reason``.

    ``role`` is a role name, ``"not used"``, or None with ``todo`` set when nothing could be
    decided; ``blocking`` marks gaps that stop the data from loading (no user column...).
    """

    table: str
    column: str | None
    role: str | None
    reason: str
    todo: bool = False
    blocking: bool = False

    def line(self) -> str:
        what = self.column if self.column is not None else self.table
        role = "TODO" if self.todo and self.role is None else (self.role or "?")
        return f"{what:<22} -> {role:<12} ({self.reason})"


@dataclass
class ColumnStats:
    """What a sample of one column looks like."""

    name: str
    count: int                   # non-empty values in the sample
    unique: int
    numeric_share: float
    integer: bool
    low: float | None
    high: float | None
    date_share: float
    mean_words: float
    mean_len: float
    media: dict[str, float]      # kind -> share of values ending in that kind's extensions
    example: str
    date_example: str = ""
    few_values: tuple[str, ...] = ()   # the distinct values when there are at most ten

    @property
    def numeric(self) -> bool:
        return self.count > 0 and self.numeric_share >= 0.99

    @property
    def zero_one(self) -> bool:
        return self.numeric and self.integer and self.low is not None and self.low >= 0 \
            and self.high is not None and self.high <= 1 and self.unique <= 2

    @property
    def span(self) -> str:
        """``"1..5"``, or a note when no value is finite (a column of inf / nan)."""
        return f"{self.low:g}..{self.high:g}" if self.low is not None and self.high is not None else "(none finite)"

    @property
    def unique_share(self) -> float:
        return self.unique / max(self.count, 1)


def column_stats(name: str, values: pd.Series) -> ColumnStats:
    """Statistics of a column given as text (NA for empty cells)."""
    text = values.dropna().astype(str).str.strip()
    text = text[text != ""]
    count = len(text)
    if count == 0:
        return ColumnStats(name, 0, 0, 0.0, False, None, None, 0.0, 0.0, 0.0, {}, "")
    nums = pd.to_numeric(text, errors="coerce")
    numeric_share = float(nums.notna().mean())
    finite = nums.dropna().to_numpy(dtype=float)
    finite = finite[np.isfinite(finite)]
    integer = bool(len(finite)) and bool(np.all(np.mod(finite, 1) == 0))
    sample = text.head(CONTENT_SAMPLE)
    date_share, date_example = 0.0, ""
    # only text that looks like a date is parsed (dateutil is slow on titles and descriptions)
    if numeric_share < 0.5 and sample.str.contains(_DATE_LIKE).mean() >= 0.5:
        # the validator parses timestamps with the same call, so a date accepted here loads later
        parsed = parse_dates(sample)
        date_share = float(parsed.notna().mean())
        date_example = str(sample[parsed.notna()].iloc[0]) if parsed.notna().any() else ""
    lower = sample.str.lower()
    media = {kind: float(lower.str.endswith(exts).mean()) for kind, exts in MEDIA_EXTENSIONS.items()}
    return ColumnStats(
        name=name, count=count, unique=int(text.nunique()), numeric_share=numeric_share, integer=integer,
        low=float(finite.min()) if len(finite) else None, high=float(finite.max()) if len(finite) else None,
        date_share=date_share, mean_words=float(sample.str.split().str.len().mean()),
        mean_len=float(sample.str.len().mean()), media=media, example=_example(str(text.iloc[0])),
        date_example=date_example, few_values=tuple(sorted(text.unique()))[:10] if text.nunique() <= 10 else (),
    )


def _example(value: str) -> str:
    """A value short enough for one printed line (URLs keep more: their end says what they are)."""
    return value[:60] if _URL.match(value) else value[:30]


def frame_stats(frame: pd.DataFrame) -> dict[str, ColumnStats]:
    # by position: a sample may repeat a column name (RecBole fields differing only in type)
    return {c: column_stats(c, frame.iloc[:, k]) for k, c in enumerate(frame.columns)}


# ---------------------------------------------------------------------- id columns
def id_column(columns: list[str], role: str, exclude: tuple[str, ...] = ()) -> tuple[str | None, str]:
    """The user or item id column by name: the role table first, then words like 'customer' / 'article'."""
    candidates = [c for c in columns if c not in exclude]
    found = find_column(candidates, role)
    if found is not None:
        return found, f"'{found}' is a{'n' if role == 'item' else ''} {role} name in the role table"
    words = _USER_WORDS if role == "user" else _ITEM_WORDS
    for col in candidates:
        if words.search(col) and _ID_SUFFIX.search(col):
            return col, f"name says {role} id ('{words.search(col).group(0)}' + id)"
    # a bare word as the whole name ('customer', 'Product', 'skus'): exports often drop the suffix
    for col in candidates:
        if re.fullmatch(words.pattern + "s?", col.strip(), re.IGNORECASE):
            return col, f"name '{col}' says {role} (no id suffix)"
    return None, f"no column is named like a{'n' if role == 'item' else ''} {role} id"


# ---------------------------------------------------------------------- interactions
def interaction_roles(stats: dict[str, ColumnStats], user: str, item: str, table: str) -> list[Guess]:
    """Roles of the non-id columns of an interaction table (timestamp, rating, label, split, weight)."""
    guesses: list[Guess] = []
    taken: set[str] = {user, item}
    order = ("split", "timestamp", "label", "rating", "weight")
    named = {role: find_column([c for c in stats if c not in taken], role) for role in order}
    for role in order:
        col = named[role]
        if col is None or col in taken:
            continue
        ok, why = _content_fits(role, stats[col])
        if ok:
            taken.add(col)
            guesses.append(Guess(table, col, role, f"name in the role table; {why}"))
        else:
            guesses.append(Guess(table, col, None, f"named like {role} but {why}; map it by hand if it is one",
                                 todo=True))
            taken.add(col)
    have = {g.role for g in guesses}
    for col, st in stats.items():
        if col in taken:
            continue
        guess = _interaction_by_content(st, have, table)
        if guess.role in INTERACTION_CONTENT_ROLES:
            have.add(guess.role)
        guesses.append(guess)
    return guesses


INTERACTION_CONTENT_ROLES = ("timestamp", "rating", "label", "split", "weight")


def _content_fits(role: str, st: ColumnStats) -> tuple[bool, str]:
    if st.count == 0:
        return False, "it is empty in the sampled rows"
    if role == "timestamp":
        if st.numeric:
            return True, f"numbers, e.g. {st.example}"
        return st.date_share >= DATE_SHARE, f"{st.date_share:.0%} parse as dates, e.g. {st.date_example or st.example}"
    if role == "rating":
        return st.numeric, (f"numbers {st.span}" if st.numeric else f"not numbers ({st.example!r})")
    if role == "label":
        return st.zero_one, ("values 0/1" if st.zero_one else f"values are not 0/1 (e.g. {st.example!r})")
    if role == "split":
        ok = _is_split(st, by_name=True)
        return ok, (f"split values (e.g. {st.example!r}: train/valid/test or 0/1/2)" if ok
                    else f"values such as {st.example!r}")
    if role == "weight":
        ok = st.numeric and (st.low or 0) >= 0
        return ok, ("non-negative numbers" if ok else f"values such as {st.example!r}")
    return False, "unknown role"


def _is_split(st: ColumnStats, by_name: bool = False) -> bool:
    # numeric 0/1/2 is MMRec's x_label, accepted only by name; by content only words count
    return bool(st.few_values) and (by_name or not st.numeric) and \
        all(v.lower() in SPLIT_VALUES for v in st.few_values)


def _interaction_by_content(st: ColumnStats, have: set[str], table: str) -> Guess:
    """An unnamed interaction column: decided by what its values look like, or left unused."""
    col = st.name
    if st.count == 0:
        return Guess(table, col, "not used", "empty in the sampled rows")
    if "timestamp" not in have and not st.numeric and st.date_share >= DATE_SHARE:
        return Guess(table, col, "timestamp", f"{st.date_share:.0%} parse as dates, e.g. {st.date_example}")
    if "timestamp" not in have and st.numeric and _TIME_WORDS.search(col) and (st.low or 0) > 1e8:
        return Guess(table, col, "timestamp", f"name says time and values look like unix time, e.g. {st.example}")
    if "split" not in have and _is_split(st):
        return Guess(table, col, "split", f"values like train/valid/test (e.g. {st.example!r})")
    if "label" not in have and st.zero_one and _LABEL_WORDS.search(col):
        return Guess(table, col, "label", "name says label/click and values are 0/1")
    if st.zero_one:
        return Guess(table, col, None, "values are 0/1: if 1 marks positive and 0 negative feedback, map it as "
                     "the label role", todo=True)
    if "rating" not in have and st.numeric and re.search(r"rat|score|star|grade", col, re.IGNORECASE) and \
            st.high is not None and st.high <= 100:
        return Guess(table, col, "rating", f"name says rating and values are {st.span}")
    kind = "numbers" if st.numeric else "text"
    return Guess(table, col, "not used", f"interaction context ({kind}, e.g. {st.example!r}); "
                 "fusionrec learns from who-item-when")


# ---------------------------------------------------------------------- items and users
def _id_like_number(st: ColumnStats) -> bool:
    """Integer codes (EAN, zero-padded or id-named columns), one per row: labels, not quantities."""
    if not (st.integer and st.unique_share > 0.9):
        return False
    padded = len(st.example) > 1 and st.example.startswith("0")
    return bool(_ID_SUFFIX.search(st.name)) or padded or (st.high or 0) >= 1e6
def side_roles(stats: dict[str, ColumnStats], id_col: str, table: str) -> list[Guess]:
    """Roles of the columns of an item or user table: text, image/audio path, attribute or unused."""
    guesses = []
    text_names = {a.lower() for a in ROLE_ALIASES["text"]}
    for col, st in stats.items():
        if col == id_col:
            continue
        if st.count == 0:
            guesses.append(Guess(table, col, "not used", "empty in the sampled rows"))
            continue
        kind = next((k for k, share in st.media.items() if share >= MEDIA_SHARE), None)
        if kind is not None and table == "items" and _URL.match(st.example):
            guesses.append(Guess(table, col, None, f"{kind} URLs (e.g. {st.example!r}) are not read: download "
                                 f"the files into this folder and map {kind}_path to their relative paths",
                                 todo=True))
            continue
        if kind is not None and table == "items":
            guesses.append(Guess(table, col, f"{kind}_path", f"{st.media[kind]:.0%} of values are {kind} files, "
                                 f"e.g. {st.example!r}"))
            continue
        named_text = col.lower() in text_names and not st.numeric
        long_text = not st.numeric and st.mean_words >= TEXT_WORDS and st.unique_share > 0.3
        categorical = st.unique <= ATTRIBUTE_MAX_UNIQUE and st.unique_share <= 0.5 and st.unique > 1
        if table == "items" and (named_text or long_text):
            why = "name is a text name in the role table" if named_text else \
                f"free text, {st.mean_words:.1f} words per value on average"
            guesses.append(Guess(table, col, "text", f"{why}, e.g. {st.example!r}"))
            if categorical and st.mean_words < TEXT_WORDS:  # genres: words to read and a category to code
                guesses.append(Guess(table, col, "attribute", f"also a category: {st.unique} distinct values"))
            continue
        if st.numeric and not _id_like_number(st):
            guesses.append(Guess(table, col, "attribute", f"numbers {st.span}"))
        elif categorical:
            guesses.append(Guess(table, col, "attribute", f"category with {st.unique} distinct values, "
                                 f"e.g. {st.example!r}"))
        elif st.unique <= 1:
            guesses.append(Guess(table, col, "not used", f"a single value ({st.example!r})"))
        else:
            guesses.append(Guess(table, col, "not used", f"an identifier-like column ({st.unique} distinct "
                                 f"short values, e.g. {st.example!r})"))
    return guesses


__all__ = ["ColumnStats", "Guess", "column_stats", "frame_stats", "id_column", "interaction_roles", "side_roles"]
