"""Markdown text: escaping, tables with a visible note for rows left out, and the row caps
that shrink until a summary fits its character limit."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from pytest_bsa.reporting.view import count, excerpt, one_line

OMITTED = "see the JSON report"


_MENTION = re.compile(r"@(?=[A-Za-z0-9])")  # a zero-width space keeps @name from pinging


_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]|~"})


def md(text: object) -> str:
    """Inline Markdown text: one line, Markdown and HTML neutralised, no @-mentions."""
    flat = one_line(text)
    return _MENTION.sub("@\u200b", html.escape(flat.translate(_MD_SPECIAL), quote=False))


def mermaid_label(text: str, width: int = 18) -> str:
    kept = "".join(c for c in text if c.isalnum() or c in " &/.,+-")
    return excerpt(kept, width) or "?"


def table(headers: Sequence[str], align: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join(align) + "|"]
    out.extend("| " + " | ".join(cells) + " |" for cells in rows)
    return out


def omitted(hidden: int, what: str = "rows", *, more: bool = True) -> str:
    noun = what[:-1] if hidden == 1 else what
    return f"_… {count(hidden)} {'more ' if more else ''}{noun} omitted; {OMITTED}._"


def capped_table(
    headers: Sequence[str], align: Sequence[str], shown: Sequence[Sequence[str]], total: int
) -> list[str]:
    """A table of the rows shown, and a visible note for the ``total - len(shown)`` left out."""
    out = table(headers, align, shown) if shown else []
    if total > len(shown):
        out += [""] if out else []
        out.append(omitted(total - len(shown), more=bool(shown)))
    return out


@dataclass(frozen=True)
class Caps:
    """How many rows each list may show; halved until the text fits the limit."""

    gates: int = 40
    categories: int = 60
    subcategories: int = 60
    flips: int = 15
    missed: int = 30
    excerpts: int = 10
    excerpt_chars: int = 280
    power: int = 60
    provenance: int = 1  # 0 leaves the section out
    cost: int = 1

    def shrunk(self) -> Caps | None:
        """Halve the first list that still shows rows, least important first."""
        for name in _SHRINK_ORDER:
            value = getattr(self, name)
            if value:
                return replace(self, **{name: value // 2})
        return None


_SHRINK_ORDER = (
    "excerpts",
    "subcategories",
    "missed",
    "flips",
    "provenance",
    "power",
    "cost",
    "gates",
    "categories",
)
