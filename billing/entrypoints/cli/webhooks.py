"""``billing webhooks``: add, list, disable, enable, remove endpoints, rotate a secret;
deliveries, redeliver, test. ``add`` and ``rotate-secret`` print the new signing secret once;
every change is audited with the shell user and ``--reason``. Parses, calls
billing.services.webhook_endpoints and prints; decides nothing.
"""

from __future__ import annotations

from typing import Any

import click

from billing.entrypoints.cli.common import _actor, _app, _emit, json_option, reason_option


@click.group("webhooks")
def webhooks() -> None:
    """Webhook endpoints (signed per Standard Webhooks) and their deliveries."""


@webhooks.command("add")
@click.option("--url", required=True, help="Where events are POSTed (http or https).")
@click.option("--events", default=None, help="Comma-separated event types (default: all).")
@click.option("--description", default=None)
@click.option("--reason", default="webhook endpoint added", help="Why (kept in the audit log).")
@json_option
def add(url: str, events: str | None, description: str | None, reason: str, as_json: bool) -> None:
    """Add an endpoint; its signing secret is printed once, now."""
    created = _app().webhooks.add(url, events, description, actor=_actor(), reason=reason)

    def show(data: dict[str, Any]) -> None:
        click.echo(f"endpoint {data['id']}: {data['url']} ({', '.join(data['events'])})")
        click.echo(f"signing secret (shown once, keep it): {data['secret']}")

    _emit(created, as_json, show)


@webhooks.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """Endpoints, enabled or disabled (and why)."""
    rows = _app().webhooks.list_endpoints()

    def show(data: list[dict[str, Any]]) -> None:
        if not data:
            click.echo("no webhook endpoints")
        for e in data:
            why = f"  ({e['disabled_reason']})" if e["disabled_reason"] else ""
            failing = f"  failing since {e['failing_since']}" if e["failing_since"] else ""
            click.echo(
                f"{e['id']:>4}  {e['status']:<8}  {e['url']}  [{', '.join(e['events'])}]"
                f"{failing}{why}"
            )

    _emit(rows, as_json, show)


def _one(data: dict[str, Any]) -> None:
    click.echo(f"endpoint {data['id']}: {data['status']}  {data['url']}")


@webhooks.command("disable")
@click.argument("endpoint_id", type=click.IntRange(min=1))
@reason_option
@json_option
def disable(endpoint_id: int, reason: str, as_json: bool) -> None:
    """Stop delivering to an endpoint (its deliveries wait)."""
    done = _app().webhooks.set_enabled(endpoint_id, False, actor=_actor(), reason=reason)
    _emit(done, as_json, _one)


@webhooks.command("enable")
@click.argument("endpoint_id", type=click.IntRange(min=1))
@reason_option
@json_option
def enable(endpoint_id: int, reason: str, as_json: bool) -> None:
    """Deliver to an endpoint again."""
    done = _app().webhooks.set_enabled(endpoint_id, True, actor=_actor(), reason=reason)
    _emit(done, as_json, _one)


@webhooks.command("remove")
@click.argument("endpoint_id", type=click.IntRange(min=1))
@reason_option
@json_option
def remove(endpoint_id: int, reason: str, as_json: bool) -> None:
    """Remove an endpoint and its delivery log."""
    data = _app().webhooks.remove(endpoint_id, actor=_actor(), reason=reason)
    _emit(data, as_json, lambda d: click.echo(f"endpoint {d['id']} removed"))


@webhooks.command("rotate-secret")
@click.argument("endpoint_id", type=click.IntRange(min=1))
@reason_option
@json_option
def rotate_secret(endpoint_id: int, reason: str, as_json: bool) -> None:
    """A new signing secret, printed once; the old one stops signing now."""
    data = _app().webhooks.rotate_secret(endpoint_id, actor=_actor(), reason=reason)

    def show(d: dict[str, Any]) -> None:
        click.echo(f"endpoint {d['id']}: new signing secret (shown once, keep it): {d['secret']}")

    _emit(data, as_json, show)


@webhooks.command("deliveries")
@click.option("--endpoint", "endpoint_id", type=click.IntRange(min=1), default=None)
@click.option("--failed", is_flag=True, help="Only deliveries that failed (or are retrying).")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@json_option
def deliveries(endpoint_id: int | None, failed: bool, limit: int, as_json: bool) -> None:
    """Deliveries, newest first: state, tries, last status or error."""
    rows = _app().webhooks.deliveries(endpoint_id=endpoint_id, failed=failed, limit=limit)

    def show(data: list[dict[str, Any]]) -> None:
        if not data:
            click.echo("no deliveries")
        for d in data:
            last = d["last_status"] or d["last_error"] or ""
            click.echo(
                f"{d['id']:>6}  endpoint {d['endpoint_id']}  {d['event_type']:<30} "
                f"{d['state']:<9} tries {d['tries']}  {last}  {d['event_id']}"
            )

    _emit(rows, as_json, show)


@webhooks.command("redeliver")
@click.argument("delivery_id", type=click.IntRange(min=1))
@reason_option
@json_option
def redeliver(delivery_id: int, reason: str, as_json: bool) -> None:
    """Send one delivery again now (same event id)."""
    data = _app(need_broker=True).webhooks.redeliver(delivery_id, actor=_actor(), reason=reason)
    _emit(data, as_json, lambda d: click.echo(f"delivery {d['id']} ({d['event_id']}) enqueued"))


@webhooks.command("test")
@click.argument("endpoint_id", type=click.IntRange(min=1))
@json_option
def test(endpoint_id: int, as_json: bool) -> None:
    """Send a signed webhook.test event now and show the answer."""
    data = _app().webhooks.test(endpoint_id)

    def show(d: dict[str, Any]) -> None:
        verdict = "ok" if d["ok"] else "FAILED"
        click.echo(
            f"{verdict}: HTTP {d['status']} in {d['latency_ms']} ms"
            + (f" ({d['error']})" if d["error"] else "")
        )

    _emit(data, as_json, show)
    if not data["ok"]:
        raise SystemExit(1)
