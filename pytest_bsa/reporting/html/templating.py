"""The HTML templates (``templates/`` here) and their Jinja2 environment.

Jinja2 is imported on first use, so the pytest plugin stays light. Autoescaping is on for
every template; values are escaped with :func:`html.escape` (the spelling of quotes the page
had before templates), markup a template made itself (macros, a rendered chart) is kept.
"""

from __future__ import annotations

import re
from functools import cache
from html import escape
from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).with_name("templates")


@cache
def environment() -> Any:
    """The templates' Jinja2 environment (imported on first use: the plugin stays light)."""
    import jinja2
    import jinja2.ext
    from markupsafe import Markup

    class _OneLine(jinja2.ext.Extension):
        """Line breaks and the indentation after them are the template file's layout only."""

        def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
            return re.sub(r"\n[ \t]*", "", source)

    def finalize(value: object) -> Any:
        # html.escape's spelling of quotes (&quot; &#x27;), as the page had before templates;
        # markup the templates made themselves (macros, charts) is left as it is.
        return value if hasattr(value, "__html__") else Markup(escape(str(value), quote=True))

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["j2"], default=True),
        extensions=[_OneLine],
        finalize=finalize,
        undefined=jinja2.StrictUndefined,
    )


def safe(text: str) -> Any:
    """Text the page embeds as it is: our own CSS and script, escaped JSON, rendered SVG."""
    from markupsafe import Markup

    return Markup(text)


def asset(name: str) -> Any:
    """A static file of ``templates/`` (the page's CSS or script), embedded as it is."""
    return safe((TEMPLATES / name).read_text(encoding="utf-8"))


def render(name: str, **context: Any) -> str:
    """Template ``name`` rendered with ``context``."""
    return str(environment().get_template(name).render(**context))
