"""The HTML page: the Vega JavaScript inlined once, every chart's spec, and the plain tables.

The page loads nothing: no script, style, font or data from a URL, so it opens from a file, offline.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl


@dataclass
class Section:
    anchor: str
    title: str
    intro: str = ""
    charts: dict[str, dict[str, Any]] = field(default_factory=dict)  # element id -> Vega-Lite spec
    html_before: str = ""  # facts and notes above the charts, already escaped
    html_after: str = ""  # tables and notes below the charts, already escaped


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "nepse-etl"


@functools.lru_cache(maxsize=1)
def vega_bundle() -> str:
    """vega, vega-lite and vega-embed as one script, for the Vega-Lite version Altair writes (~0.9 MB).

    vl-convert bundles it on request, which takes a few seconds, so it is kept in the user's cache
    directory (``$XDG_CACHE_HOME/nepse-etl``) once made; without a writable cache it is made each time.
    """
    import vl_convert

    wanted = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])  # v6.4.1 -> 6.4
    versions = vl_convert.get_vegalite_versions()
    version = wanted if wanted in versions else versions[-1]
    cached = _cache_dir() / f"vega-bundle-{vl_convert.__version__}-{version}.js"
    with contextlib.suppress(OSError):
        return cached.read_text(encoding="utf-8")
    bundle = vl_convert.javascript_bundle(vl_version=version)
    with contextlib.suppress(OSError):
        cached.parent.mkdir(parents=True, exist_ok=True)
        temporary = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        temporary.write_text(bundle, encoding="utf-8")
        os.replace(temporary, cached)
    return bundle


def _script_safe(text: str) -> str:
    """Text that cannot close its <script> element early."""
    return text.replace("</", "<\\/")


def _checked_bundle() -> str:
    bundle = vega_bundle()
    if "</script" in bundle.lower():  # would end the element early; rewriting minified code is not safe
        raise RuntimeError("the Vega bundle contains '</script'; it cannot be inlined as it is")
    return bundle


def table(frame: pl.DataFrame, headers: Mapping[str, str] | None = None, numeric: Sequence[str] = ()) -> str:
    headers = headers or {}
    head = "".join(f"<th>{html.escape(headers.get(column, column))}</th>" for column in frame.columns)
    body = []
    for row in frame.iter_rows(named=True):
        cells = []
        for column, value in row.items():
            text = "–" if value is None else f"{value:,}" if isinstance(value, int) else (
                f"{value:,.2f}" if isinstance(value, float) else str(value))
            cells.append(f'<td class="num">{html.escape(text)}</td>' if column in numeric
                         else f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>'


_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f6f7f9; }
header { background: #1f3a5f; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 0; opacity: .85; }
nav { padding: 8px 32px; background: #fff; border-bottom: 1px solid #dde1e6; }
nav a { margin-right: 18px; color: #1f3a5f; text-decoration: none; font-weight: 600; }
main { padding: 8px 32px 40px; max-width: 1200px; }
section { background: #fff; border: 1px solid #dde1e6; border-radius: 6px; padding: 16px 20px; margin: 16px 0; }
h2 { margin: 0 0 6px; font-size: 18px; color: #1f3a5f; }
.intro, .note { color: #555; margin: 4px 0 10px; }
.facts { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 4px; }
.fact { background: #f0f3f7; border-radius: 4px; padding: 6px 12px; }
.fact b { display: block; font-size: 16px; }
table { border-collapse: collapse; margin: 10px 0; font-size: 13px; }
th, td { border-bottom: 1px solid #e3e6ea; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #f0f3f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f0f3f7; padding: 8px 12px; border-radius: 4px; overflow-x: auto; }
.chart { margin: 8px 0; }
.chart[data-rendered="error"]::after { content: "this chart could not be drawn: see the browser console";
       color: #b2182b; }
"""

_EMBED = """
const specs = %s;
const renderers = %s;
for (const [id, spec] of Object.entries(specs)) {
  const element = document.getElementById(id);
  vegaEmbed(element, spec, {actions: false, renderer: renderers[id] || "svg"})
    .then(() => { element.dataset.rendered = "yes"; })
    .catch((error) => { element.dataset.rendered = "error"; console.error(error); });
}
"""


def facts(items: Mapping[str, str]) -> str:
    return '<div class="facts">' + "".join(
        f'<div class="fact">{html.escape(label)}<b>{html.escape(value)}</b></div>' for label, value in items.items()
    ) + "</div>"


def render_page(title: str, subtitle: str, sections: Sequence[Section], canvas: Sequence[str] = ()) -> str:
    """The whole page. ``canvas``: chart ids drawn on a canvas instead of SVG (thousands of marks)."""
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    body = []
    specs: dict[str, Any] = {}
    for section in sections:
        charts = "".join(f'<div class="chart" id="{chart_id}"></div>' for chart_id in section.charts)
        specs.update(section.charts)
        intro = f'<p class="intro">{html.escape(section.intro)}</p>' if section.intro else ""
        body.append(f'<section id="{section.anchor}"><h2>{html.escape(section.title)}</h2>{intro}'
                    f"{section.html_before}{charts}{section.html_after}</section>")
    script = _EMBED % (_script_safe(json.dumps(specs, separators=(",", ":"), default=str)),
                       json.dumps({chart_id: "canvas" for chart_id in canvas}))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script>{_checked_bundle()}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header><nav>{nav}</nav>"
        f"<main>{''.join(body)}</main><script>{script}</script></body></html>\n"
    )
