"""Model output as data the judge cannot mistake for instructions (pure).

Everything the model under test wrote (and the benchmark's request it answered) reaches the
judge JSON-encoded on a single line. JSON escapes every newline and control character; the
few characters that some readers still treat as line breaks (U+0085, U+2028, U+2029) are
escaped too, so the data can never start a line of its own. The data line sits between two
boundary lines whose token is a hash of the data, so a reply cannot predict it, and any
spelling of the boundary phrase inside the data is written with a JSON escape (``\\u0020``),
which decodes to the same text but never matches the delimiter. Decoding the line with any
JSON parser gives back exactly the original strings.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping

BEGIN = "BEGIN UNTRUSTED DATA"
END = "END UNTRUSTED DATA"
_LINE_BREAKS = {"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_BREAKS = re.compile("[\x85\u2028\u2029]")
_PHRASE = re.compile(r"(untrusted) (data)", re.IGNORECASE)


def _one_line(encoded: str) -> str:
    encoded = _BREAKS.sub(lambda m: _LINE_BREAKS[m.group()], encoded)
    # The delimiter phrase inside a string becomes "untrusted\u0020data": same text once decoded.
    return _PHRASE.sub(r"\1\\u0020\2", encoded)


def json_literal(text: str) -> str:
    """``text`` as a one-line JSON string literal (``"..."``) that decodes to ``text``."""
    return _one_line(json.dumps(text, ensure_ascii=False))


def json_line(fields: Mapping[str, str]) -> str:
    """``fields`` as a one-line JSON object that decodes to ``fields``."""
    return _one_line(json.dumps(dict(fields), ensure_ascii=False))


def data_block(fields: Mapping[str, str]) -> str:
    """Three lines: the opening boundary, the data as one JSON line, the closing boundary."""
    line = json_line(fields)
    token = hashlib.sha256(line.encode("utf-8")).hexdigest()[:16]
    return f"{BEGIN} {token}\n{line}\n{END} {token}"
