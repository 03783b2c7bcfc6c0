"""Media discovery: find the image / audio files of a dataset folder and the pattern that names them.

Product photos and posters usually live in a folder named after the items, flat
(``posters/1.jpg``) or nested by an id prefix (``images/010/0108775015.jpg``). Instead of
asking the user for a path column, :func:`discover_pattern` walks the folder, matches file
names to item ids and derives a pattern the readers fill per item, using a Python format
spec on the id string for nested folders::

    images/{article_id}.jpg
    images/{article_id:.3}/{article_id}.jpg     # "0108775015" -> images/010/0108775015.jpg

Ids are compared as the strings they are in the table (leading zeros kept).
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

MEDIA_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"),
    "audio": (".mp3", ".wav", ".flac", ".ogg", ".m4a", ".aac", ".opus"),
}
# a folder holds media of the dataset only when most of its files are named by item ids
MIN_NAMED_SHARE = 0.5
# stop walking after this many files: enough to see any folder layout, bounded time on huge trees
MAX_FILES = 2_000_000


@dataclass(frozen=True)
class MediaFile:
    """One media file: its path relative to the root, split into folder parts, stem and extension."""

    parts: tuple[str, ...]
    stem: str
    ext: str


def media_kind(path: str) -> str | None:
    """``"image"`` / ``"audio"`` from a file name's extension, else None."""
    suffix = os.path.splitext(path.strip().lower())[1]
    for kind, exts in MEDIA_EXTENSIONS.items():
        if suffix in exts:
            return kind
    return None


def scan_media(root: str | Path, kind: str) -> list[MediaFile]:
    """Every file of ``kind`` under ``root`` (hidden folders skipped), relative to ``root``."""
    if kind not in MEDIA_EXTENSIONS:
        raise ValueError(f"kind must be one of {sorted(MEDIA_EXTENSIONS)}, got {kind!r}")
    exts = MEDIA_EXTENSIONS[kind]
    root = Path(root)
    found: list[MediaFile] = []
    seen = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        rel = Path(folder).relative_to(root).parts
        for name in files:
            seen += 1
            stem, ext = os.path.splitext(name)
            if ext.lower() in exts and not name.startswith("."):
                found.append(MediaFile(rel, stem, ext))
        if seen >= MAX_FILES:
            break
    return found


def _folder_template(parts: tuple[str, ...], item_id: str, column: str) -> str:
    """Folder parts as a pattern: a part equal to a prefix of the id becomes ``{column:.k}``."""
    out = []
    for part in parts:
        if 0 < len(part) <= len(item_id) and item_id.startswith(part):
            out.append(f"{{{column}:.{len(part)}}}")
        else:
            out.append(part.replace("{", "{{").replace("}", "}}"))
    return "/".join(out)


def fill_pattern(pattern: str, column: str, item_id: str) -> str:
    """The path a pattern names for one item (what the readers compute per row)."""
    return pattern.format(**{column: item_id})


def discover_pattern(
    root: str | Path, item_ids: Iterable[str], kind: str, id_column: str = "item_id",
    files: list[MediaFile] | None = None,
) -> tuple[str | None, str]:
    """Find the folder layout of ``kind`` media named by item ids; returns ``(pattern, evidence)``.

    ``pattern`` uses ``id_column`` as the field name, e.g. ``images/{article_id:.3}/{article_id}.jpg``,
    relative to ``root``; None when no folder has files named by the ids (``evidence`` then
    says what was seen). ``files`` reuses an earlier :func:`scan_media` of the same root.
    """
    ids = {str(i) for i in item_ids}
    media = scan_media(root, kind) if files is None else files
    if not media:
        return None, f"no {kind} files under {root}"
    by_template: dict[str, list[str]] = defaultdict(list)
    per_folder: Counter[tuple[str, ...]] = Counter(m.parts for m in media)
    named_per_folder: Counter[tuple[str, ...]] = Counter()
    for m in media:
        if m.stem not in ids:
            continue
        named_per_folder[m.parts] += 1
        folder = _folder_template(m.parts, m.stem, id_column)
        name = f"{{{id_column}}}{m.ext}"
        by_template[f"{folder}/{name}" if folder else name].append(m.stem)
    if not by_template:
        sample = ", ".join("/".join((*m.parts, m.stem + m.ext)) for m in media[:3])
        return None, (f"{len(media)} {kind} file(s) found (e.g. {sample}) but none is named by an item id "
                      f"(ids look like {next(iter(ids), '?')!r})")
    pattern, stems = max(by_template.items(), key=lambda kv: len(set(kv[1])))
    matched = len(set(stems))
    # files in the folders the winning pattern covers, to tell a media folder from a stray match
    depth = pattern.count("/")
    covered = [f for f in per_folder if len(f) == depth and _covers(pattern, f, id_column)]
    total = sum(per_folder[f] for f in covered) or matched
    named = sum(named_per_folder[f] for f in covered) or matched
    if named / total < MIN_NAMED_SHARE:
        return None, (f"only {named} of {total} {kind} files under {root} are named by item ids; "
                      "not treated as the items' media")
    share = matched / max(len(ids), 1)
    evidence = f"{matched} of {len(ids)} items have a file ({share:.0%}), e.g. {fill_pattern(pattern, id_column, stems[0])}"
    if total > named:
        evidence += f"; {total - named} file(s) there match no item id"
    others = sorted((len(set(v)), k) for k, v in by_template.items() if k != pattern)
    if others:
        evidence += f"; also seen: {others[-1][1]} ({others[-1][0]} items)"
    return pattern, evidence


def _covers(pattern: str, parts: tuple[str, ...], column: str) -> bool:
    """True when ``parts`` could be the folder of ``pattern`` for some id (prefix fields match any text)."""
    folders = pattern.split("/")[:-1]
    prefix = f"{{{column}:."
    for want, got in zip(folders, parts):
        if want.startswith(prefix):
            if len(got) != int(want[len(prefix):-1]):
                return False
        elif want.replace("{{", "{").replace("}}", "}") != got:
            return False
    return True


__all__ = ["MEDIA_EXTENSIONS", "MediaFile", "discover_pattern", "fill_pattern", "media_kind", "scan_media"]
