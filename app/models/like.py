"""LIKE patterns built from a person's text: `%` and `_` they type are letters, not wildcards."""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql.elements import ColumnElement

LIKE_ESCAPE = "\\"


def escape_like(text: str) -> str:
    """`text` with the escape character, `%` and `_` escaped for a LIKE ... ESCAPE '\\' pattern."""
    for special in (LIKE_ESCAPE, "%", "_"):  # the escape character first, or it would double the others'
        text = text.replace(special, LIKE_ESCAPE + special)
    return text


def contains_text(column: Any, text: str) -> ColumnElement[bool]:
    """`column LIKE '%text%'` with `text` matched literally."""
    return column.like(f"%{escape_like(text)}%", escape=LIKE_ESCAPE)
