"""Markdown tables whose cells cannot escape them, for the report, compare and the gate.

GitHub renders HTML inside Markdown, so every value goes through `md_escape`: <, > and & become
entities, | is escaped so a name cannot break out of its table cell, and [ ] so it cannot make a
link or an image.
"""

from __future__ import annotations

# Enough to keep a value inside its cell and out of HTML; other Markdown in a name is only cosmetic.
_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    "|": "\\|",
    "\\": "\\\\",
    "[": "\\[",
    "]": "\\]",
    "\n": " ",
    "\r": " ",
}


def md_escape(value) -> str:
    return "".join(_ESCAPES.get(ch, ch) for ch in str(value))


def table(header: list[str], body: list[list], align: list[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |", "| " + " | ".join(rule) + " |"]
    lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in body]
    return "\n".join(lines)
