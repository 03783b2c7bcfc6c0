"""The report page: one self-contained HTML file (inline styles and images, no script, no URL).

Everything the page shows is inside the file -- figures and thumbnails as ``data:`` URIs,
styles in a ``<style>`` block -- so it opens offline, from an e-mail attachment or a CI
artifact, exactly as it was written.
"""
from __future__ import annotations

import html
import time
from collections.abc import Sequence

from fusionrec.report.sections import Section

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 0 24px 48px; color: #222; background: #fff; }
h1 { font-size: 1.5em; margin-top: 24px; }
h2 { border-bottom: 2px solid #4C72B0; padding-bottom: 4px; margin-top: 40px; }
h3 { font-size: 1.05em; margin: 20px 0 6px; }
nav a { margin-right: 14px; }
p.intro { color: #444; max-width: 900px; }
p.note { color: #666; font-size: 0.9em; margin: 4px 0; }
figure { margin: 8px 0; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.grid figure { margin: 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
table.metrics { border-collapse: collapse; margin: 10px 0; font-size: 0.9em; }
table.metrics th, table.metrics td { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
table.metrics th { background: #f5f6f8; text-align: left; }
table.metrics tr.best th, table.metrics tr.best td { background: #fdf2e4; font-weight: 600; }
.user { border: 1px solid #e3e3e3; border-radius: 6px; padding: 4px 12px 10px; margin: 14px 0; }
.row { display: flex; align-items: flex-start; margin: 6px 0; }
.rowtitle { width: 150px; flex: none; font-size: 0.85em; color: #555; padding-top: 20px; }
.cards { display: flex; flex-wrap: wrap; gap: 6px; }
.card { width: 84px; border: 2px solid #e6e6e6; border-radius: 4px; padding: 3px; font-size: 0.7em;
        text-align: center; background: #fafafa; }
.card.hit { border-color: #2e9d4a; background: #eef9f0; }
.card img { width: 72px; height: 72px; object-fit: contain; display: block; margin: 0 auto 2px; }
.card .noimg { width: 72px; height: 72px; margin: 0 auto 2px; background: #eee; color: #999; line-height: 72px; }
.card .title { display: block; overflow: hidden; max-height: 3.6em; }
.card .score { display: block; color: #888; }
footer { margin-top: 40px; color: #888; font-size: 0.8em; }
"""


def render_section(sec: Section) -> str:
    body = "\n".join(sec.parts)
    return (f'<section id="{html.escape(sec.anchor)}">\n<h2>{html.escape(sec.title)}</h2>\n'
            f'<p class="intro">{html.escape(sec.intro)}</p>\n{body}\n</section>')


def render_page(title: str, sources: Sequence[str], sections: Sequence[Section]) -> str:
    """The whole HTML document."""
    nav = " ".join(f'<a href="#{html.escape(s.anchor)}">{html.escape(s.title)}</a>' for s in sections)
    listed = ", ".join(f"<code>{html.escape(s)}</code>" for s in sources)
    made = time.strftime("%Y-%m-%d %H:%M")
    return "\n".join([
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        # an empty inline icon: a browser asks for /favicon.ico otherwise, which fails offline
        '<link rel="icon" href="data:,">',
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">from {listed}; written {made} by <code>fusionrec report</code></p>',
        f"<nav>{nav}</nav>",
        *[render_section(s) for s in sections],
        "<footer>fusionrec report: every figure is embedded in this file.</footer>",
        "</body>",
        "</html>",
    ])


__all__ = ["STYLE", "render_page", "render_section"]
