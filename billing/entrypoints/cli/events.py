"""``billing events list``: the public events, oldest first, as the webhooks carry them.

Parses options, calls billing.services.read.events and prints; decides nothing.
"""

from __future__ import annotations

import json

import click

from billing.entrypoints.cli.common import _app, _emit, json_option
from billing.services.read.events import MAX_LIMIT, EventPage, list_events


@click.group("events")
def events() -> None:
    """Public events (what webhooks deliver), for polling."""


@events.command("list")
@click.option("--after", default=None, help="Cursor: show events after this one.")
@click.option("--type", "types", default=None, help="Comma-separated event types.")
@click.option("--limit", type=click.IntRange(1, MAX_LIMIT), default=100, show_default=True)
@json_option
def list_command(after: str | None, types: str | None, limit: int, as_json: bool) -> None:
    """Events after --after, oldest first."""
    page = list_events(_app().db, after=after, types=types, limit=limit)
    _emit(page.as_dict(), as_json, lambda _data: _render(page))


def _render(page: EventPage) -> None:
    if not page.events:
        click.echo("no events")
    for event in page.events:
        data = event["data"]
        what = f"{data.get('object')} {data.get('id', '')}".strip()
        status = data.get("status") or data.get("state") or ""
        click.echo(
            f"{event['created_at']}  {event['type']:<34} {what:<20} {status:<22} "
            f"seq {event.get('sequence') or '-'}  {event['id']}"
        )
    more = " (more: --after " + json.dumps(page.next_cursor) + ")" if page.has_more else ""
    click.echo(f"next cursor: {page.next_cursor}{more}")
