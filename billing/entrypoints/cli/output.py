"""How CLI output reaches a terminal or a pipe without being misread.

It decides three things: data is shown literally (a customer id like ``[/x]`` is never
read as rich markup, and ESC or other control characters are printed as visible escapes,
never sent to the terminal); a table goes to a terminal as a rich table that folds long
cells instead of cutting them, and to a pipe or file as plain, untruncated columns; and a
list that stopped at its limit says how to get the next page. It must never change what a
value means, and never drop a row or a character.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

console = Console(highlight=False)


def safe(value: Any) -> str:
    """``value`` as text with every control character (ESC, BEL, CR, NUL, C1 …) written as a
    visible escape such as ``\\x1b``, so that it cannot move the cursor or recolour the
    terminal."""
    text = "-" if value is None else str(value)
    return "".join(_visible(ch) for ch in text)


def _visible(ch: str) -> str:
    kind = unicodedata.category(ch)
    if kind == "Cc":  # C0, DEL and C1: ESC, BEL, CR, NUL, CSI …
        return f"\\x{ord(ch):02x}"
    if kind == "Cf":  # invisible format characters: bidi overrides, zero-width …
        return f"\\u{ord(ch):04x}"
    return ch


def line(text: str, *, err: bool = False) -> None:
    """Print one line of text as is (control characters made visible, no markup)."""
    click.echo(safe(text), err=err)


def print_text(text: str) -> None:
    """Print through rich as plain text: nothing in ``text`` is markup."""
    console.print(Text(safe(text)), soft_wrap=True)


def table(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None
) -> None:
    """A table: rich on a terminal (long cells fold, never cut), plain columns on a pipe."""
    cells = [[safe(cell) for cell in row] for row in rows]
    if not console.is_terminal:
        _plain(list(columns), cells, title)
        return
    shown = Table(title=None if title is None else Text(safe(title)))
    for column in columns:
        shown.add_column(Text(column), overflow="fold")
    for row in cells:
        shown.add_row(*(Text(cell) for cell in row))
    console.print(shown)


def _plain(columns: list[str], rows: list[list[str]], title: str | None) -> None:
    widths = [len(column) for column in columns]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    if title:
        click.echo(safe(title))
    for row in [columns, *rows]:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def more_notice(shown: int, limit: int, offset: int, command: str) -> None:
    """On stderr (so that piped rows stay rows): the page was full, here is the next one."""
    if shown >= limit:
        click.echo(
            f"more may follow: showing {offset + 1}-{offset + shown}; next page: "
            f"{command} --offset {offset + shown} --limit {limit}",
            err=True,
        )


def json_error(code: str, message: str) -> None:
    """An error as one JSON object on stdout, for scripts that asked for ``--json``."""
    click.echo(json.dumps({"error": code, "message": message}))
