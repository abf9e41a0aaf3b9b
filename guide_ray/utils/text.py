"""Text for users: ids and messages made safe to print on one log line, and did-you-mean hints."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def escape(text: object) -> str:
    """`str(text)` with control characters (newline, carriage return, ESC...) as Python escapes,
    so an identity id like "a\\nERROR forged" cannot start a log line of its own."""
    s = str(text)
    return s if s.isprintable() else "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in s)


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """" (did you mean 'x'?)" for the closest of `choices` to a mistyped `name`, or "" when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
