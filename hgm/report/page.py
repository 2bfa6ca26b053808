"""One self-contained HTML page: plotly.js (from the plotly wheel) and every style and script
inlined, nothing fetched from the network, so the file can be mailed, archived and opened offline."""

from __future__ import annotations

import json
import re
import time
from functools import cache
from html import escape
from importlib.resources import files

import plotly.io as pio
import plotly.offline

from hgm import __version__

ASSETS = files("hgm.report") / "assets"
PLOT_CONFIG = {"displaylogo": False, "scrollZoom": True, "responsive": True}


@cache
def _plotly_js() -> str:
    # "</script" cannot occur inside an inline script; plotly.min.js has none, but make sure.
    return str(plotly.offline.get_plotlyjs()).replace("</script", "<\\/script")


def figure_html(fig: object, div_id: str) -> str:
    """A figure's <div> and the script that draws it (plotly.js itself is inlined once per page)."""
    return str(pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, config=PLOT_CONFIG,
                           validate=False))


def json_script(element_id: str, data: object) -> str:
    """Data for the page's scripts, safe inside HTML."""
    text = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def asset(name: str) -> str:
    return (ASSETS / name).read_text()


def render_page(title: str, subtitle: str, body: str, *, scripts: str = "", css: str = "") -> str:
    parts = {"title": escape(title), "subtitle": subtitle, "body": body, "scripts": scripts,
             "css": asset("page.css") + css, "plotlyjs": _plotly_js(), "version": __version__,
             "written": time.strftime("%Y-%m-%d %H:%M:%S")}
    # One pass, so nothing inserted is scanned for markers again (plotly.js is full of braces).
    return re.sub(r"\{\{(\w+)\}\}", lambda m: parts[m.group(1)], asset("page.html"))


def table(
    header: list[str], rows: list[list[str]], *, right: frozenset[int] | set[int] = frozenset(), cls: str = ""
) -> str:
    """An HTML table; cells are HTML already (escape text before)."""
    th = "".join(f"<th{' class=r' if i in right else ''}>{h}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f"<td{' class=r' if i in right else ''}>{c}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table class='{cls}'>{f'<tr>{th}</tr>' if header else ''}{body}</table>"
