"""The report's sections that look at items: the embedding maps and the example users.

:class:`Section` is the unit :mod:`fusionrec.report.html` renders: an anchor (the HTML id
tests and links use), a title, an introduction, and HTML fragments (figures, tables, notes).
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field

import numpy as np

from fusionrec.report import plots
from fusionrec.report.analysis import RunAnalysis


@dataclass
class Section:
    """One section of the report: ``anchor`` is its HTML id, ``parts`` its HTML fragments."""

    anchor: str
    title: str
    intro: str
    parts: list[str] = field(default_factory=list)

    def image(self, uri: str | None, alt: str) -> None:
        if uri:
            self.parts.append(f'<figure><img src="{uri}" alt="{html.escape(alt)}"></figure>')

    def note(self, text: str) -> None:
        self.parts.append(f'<p class="note">{html.escape(text)}</p>')

    def heading(self, text: str) -> None:
        self.parts.append(f"<h3>{html.escape(text)}</h3>")


@dataclass
class ReportOptions:
    """Knobs of ``fusionrec report`` (see its --help)."""

    k: int | None = None
    n_users: int = 4
    map_items: int = 1000
    map_method: str = "tsne"
    colour_by: str | None = None


# ---------------------------------------------------------------------- embedding maps
def embeddings_section(analyses: list[RunAnalysis], options: ReportOptions) -> Section:
    """2-D maps of every content modality (once per dataset) and of each run's item vectors."""
    from fusionrec.report.items import category_column, item_categories
    from fusionrec.report.projection import item_maps, sample_rows, umap_available

    method = options.map_method
    if method == "umap" and not umap_available():
        method = "tsne"
    sec = Section("embeddings", "Embedding space",
                  f"Item vectors projected to 2-D with {'UMAP' if method == 'umap' else 't-SNE'} (cosine): each "
                  "content modality as the encoder wrote it, and the model's item vectors after alignment and "
                  "fusion. Colours: the item category when the data has one; crosses: cold items (no training "
                  "interaction).")
    if method != options.map_method:
        sec.note("umap-learn is not installed: the maps use t-SNE (pip install umap-learn for UMAP)")
    seen_datasets: set[str] = set()
    for a in analyses:
        if a.loaded is None:
            sec.note(f"{a.run.label}: {a.missing}")
            continue
        dataset = a.dataset
        column = category_column(dataset.items, options.colour_by)
        categories = item_categories(dataset.items, column)
        cold = a.evaluator.item_popularity == 0
        rows = sample_rows(dataset.n_items, options.map_items)
        modalities = {}
        if dataset.name not in seen_datasets:
            modalities = {n: (m.features, m.mask) for n, m in dataset.modalities.items()}
            seen_datasets.add(dataset.name)
        vectors = a.loaded.model.item_embeddings()
        fused = vectors.detach().float().cpu().numpy() if vectors is not None else None
        maps = item_maps(modalities, fused, f"{a.run.label}: item vectors (after fusion)", rows, method)
        sec.heading(a.run.label)
        sec.parts.append('<div class="grid">')
        for m in maps:
            sec.image(plots.item_map(m, categories, cold, column), m.title)
        sec.parts.append("</div>")
        if fused is None:
            sec.note(f"{a.run.label}: model {a.run.model_name!r} has no item vectors (it scores items "
                     "without an embedding table), so only its data's modalities are mapped")
        if not dataset.modalities and fused is None:
            sec.note(f"{a.run.label}: neither content modalities nor item vectors to map")
        if column is None:
            sec.note("no category-like item column to colour by (pass --color-by COLUMN to choose one)")
        if len(rows) < dataset.n_items:
            sec.note(f"{len(rows)} of {dataset.n_items} items drawn (--map-items to change)")
    return sec


# ---------------------------------------------------------------------- example users
def users_section(analyses: list[RunAnalysis], options: ReportOptions) -> Section:
    """A few users: their last items and each run's top-10 for them, with thumbnails."""
    from fusionrec.report.examples import HISTORY_N, TOP_N, choose_users, user_examples

    sec = Section("users", "A few users",
                  f"Each user's {HISTORY_N} most recent training items and each run's top-{TOP_N} for the "
                  "test split (items they already had are not recommended again); a green frame marks an "
                  "item the user really chose in the test split.")
    usable = [a for a in analyses if a.loaded is not None]
    if not usable:
        sec.note("no run has a saved model to recommend with")
        return sec
    ids = choose_users(usable[0].evaluator, options.n_users)
    per_run = {a.run.label: {e.user_id: e for e in user_examples(a.loaded, a.evaluator, ids)} for a in usable}
    for uid in ids:
        first = next((r[uid] for r in per_run.values() if uid in r), None)
        if first is None:
            continue
        sec.parts.append(f'<div class="user"><h3>user {html.escape(uid)}</h3><p class="note">'
                         f"{first.n_history} training interactions, {first.n_test} test items</p>")
        sec.parts.append(_card_row("last items", first.history))
        for label, examples in per_run.items():
            if uid in examples:
                sec.parts.append(_card_row(f"top-{TOP_N}: {label}", examples[uid].recommendations))
        sec.parts.append("</div>")
    if not any(c.image for r in per_run.values() for e in r.values() for c in e.history + e.recommendations):
        sec.note("the items have no readable images (no image column, or the files are not under the data root)")
    return sec


def _card_row(title: str, cards: list) -> str:
    items = []
    for c in cards:
        img = (f'<img src="{c.image}" alt="{html.escape(c.title)}">' if c.image
               else '<div class="noimg">no image</div>')
        cls = "card hit" if c.hit else "card"
        score = f'<span class="score">{c.score:.3f}</span>' if c.score is not None and np.isfinite(c.score) else ""
        items.append(f'<div class="{cls}" title="{html.escape(c.item_id)}">{img}'
                     f'<span class="title">{html.escape(c.title)}</span>{score}</div>')
    return f'<div class="row"><div class="rowtitle">{html.escape(title)}</div><div class="cards">{"".join(items)}</div></div>'


__all__ = ["ReportOptions", "Section", "embeddings_section", "users_section"]
