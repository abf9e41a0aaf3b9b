"""Text from users (identity ids, error messages) made safe to print on one log line."""

from __future__ import annotations


def escape(text: object) -> str:
    """`str(text)` with control characters (newline, carriage return, ESC...) as Python escapes,
    so an identity id like "a\\nERROR forged" cannot start a log line of its own."""
    s = str(text)
    return s if s.isprintable() else "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in s)
