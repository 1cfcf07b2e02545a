"""Text from users printed on a terminal: control characters shown escaped, never obeyed."""

from __future__ import annotations

import unicodedata


def printable(text: str) -> str:
    """`text` with control and format characters (an escape sequence that retitles the terminal, a
    right-to-left override that reorders what follows) written as escapes such as \\x1b and
    \\u202e; line breaks and tabs kept."""
    if text.isprintable():
        return text
    return "".join(
        c
        if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cf", "Zl", "Zp")
        else c.encode("unicode_escape").decode()
        for c in text
    )
