"""The one way text from users, configs, files or subprocesses reaches rich: `literal(text)`.

rich reads `[...]` as markup, so `pip install 'hgm[swe-bench]'` would print as `pip install 'hgm'`
and a path or a model's output with brackets could change styles or vanish. Markup the harness
writes itself stays markup; every interpolated value goes through `literal`.
"""

from __future__ import annotations

from rich.markup import escape


def literal(text: object) -> str:
    """`text` (any object, as str) escaped so that rich prints it exactly as it is."""
    return escape(str(text))
