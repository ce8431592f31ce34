"""Names shared by test ids, markers and report ids (pure)."""

from __future__ import annotations

import re


def slug(name: str) -> str:
    """'Invasion of Privacy and Confidentiality' -> 'invasion-of-privacy-and-confidentiality'."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def marker_name(name: str) -> str:
    """'Risk Omission' -> 'bsa_risk_omission' (a valid -m expression)."""
    return "bsa_" + slug(name).replace("-", "_")
