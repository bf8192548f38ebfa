"""A service world that checks, after every scheduler pass, worker run and action, that
every open invoice has a next step (billing.domain.collection.next_step): a planned attempt,
a charge in flight, a wait (for an older invoice, a card or an operator) or a final state.

The gateway answers like :class:`~tests.support.fakes.FakeGateway` by binding prefix
(``insufficient-…`` declines for lack of funds, ``approve-…`` pays); ``refuse_all`` makes
every charge a hard decline ("binding not found") whatever the card.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from billing.domain.dunning_policy import DunningPolicy
from billing.gateway.port import ChargeRequest
from billing.gateway.results import GatewayResult, JsonReply
from billing.services.collection import stranded_invoices
from billing.storage.tables import Event
from tests.support.fakes import FakeGateway, error_body
from tests.support.world import ServiceWorld, sqlite_url


class CardGateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self.refuse_all = False
        #: The bindingId of every charge sent, in order.
        self.cards: list[str] = []

    def charge(self, request: ChargeRequest) -> GatewayResult:
        self.cards.append(request.binding_id)
        if self.refuse_all:
            self.payment_calls.append(request.order_number)
            return JsonReply(200, error_body("2", "The binding is not found"))
        return super().charge(request)


@dataclass
class DunningWorld(ServiceWorld):
    gateway: CardGateway

    def check(self) -> None:
        """Every open invoice has a next step."""
        with self.db.transaction() as session:
            stranded = stranded_invoices(session)
        assert stranded == [], f"open invoices with nothing planned: {stranded}"

    def work(self) -> None:
        super().work()
        self.check()

    def tick(self, seconds: float = 0) -> None:
        self.clock.advance(seconds=seconds)
        self.scheduler.run_pass()
        self.check()
        self.work()

    def subscribe(self, binding: str, schedule: str) -> int:  # type: ignore[override]
        """In UTC; every open invoice still has a next step after it."""
        sub_id = super().subscribe(binding, schedule=schedule, timezone="UTC")
        self.check()
        return sub_id

    def set_card(self, sub_id: int, binding: str) -> None:
        self.app.actions.subscriptions.set_binding(sub_id, binding, actor="crm", reason="new card")
        self.check()

    def manual_retry(self, sub_id: int) -> dict[str, Any]:
        result = self.app.actions.retries.retry(sub_id, actor="ops", reason="customer called")
        self.check()
        return result

    def statuses(self, sub_id: int) -> list[str]:
        """The subscription's status history, from its status-change events."""
        with self.db.transaction() as s:
            return [
                str(e.to_state)
                for e in s.scalars(
                    select(Event)
                    .where(Event.subscription_id == sub_id, Event.kind == "subscription_status")
                    .order_by(Event.id)
                )
            ]


def make_dunning_world(
    tmp_path: Path, policy: DunningPolicy, *, database_url: str | None = None
) -> DunningWorld:
    """On ``database_url``, or an SQLite file in ``tmp_path``."""
    return DunningWorld.build(
        database_url or sqlite_url(tmp_path),
        policy=policy,
        gateway=CardGateway(),
        stale_sending_after=30,
        requeue_after=60,
    )
