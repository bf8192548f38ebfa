"""Charging a batch of attempts: the worker's month-start path (one message, many ids).

The batch is claimed in one transaction: every attempt with its invoice locked, the one
claim rule (:func:`billing.domain.claiming.claim_verdict`) applied to each, and those to
send moved to ``sending`` with one statement, their lease started on the database clock.
Their orderNumbers were stored when the attempts were created, before any call. The calls
then go out concurrently (a thread pool per process, as many as the gateway connection
pool); each is sent once and classified exactly as the single path does
(:meth:`Charger.send_claimed`). The outcomes are settled together
(:mod:`billing.services.pipeline.batch_settlement`).

A crash anywhere leaves attempts ``pending`` (the redelivered batch claims them again) or
``sending`` (never sent again: the redelivered batch, or the scheduler's stale-send check,
settles them by order status). It must never send an attempt that is not ``pending``.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, select, update
from sqlalchemy.orm import Session

from billing.domain.claiming import Step, claim_verdict
from billing.domain.model import AttemptState, AttemptTrigger, Outcome
from billing.gateway.accounts import fiscal_receipts
from billing.gateway.port import ChargeRequest, Gateway
from billing.observability.logs import log_context
from billing.services.pipeline.batch_settlement import BatchSettlement, Charged
from billing.services.pipeline.charging import (
    Charger,
    Claimed,
    charge_request,
    skip_unsent,
    with_contacts,
)
from billing.storage.bulk import bulk_update, ids_in
from billing.storage.circuit_row import paused_accounts
from billing.storage.tables import ChargeAttempt, Invoice, Subscription

log = logging.getLogger("billing.charging")


@dataclass(frozen=True)
class SentAttempt:
    """An attempt this worker moved to ``sending``, with its request."""

    id: int
    invoice_id: int
    subscription_id: int
    trigger: AttemptTrigger
    claimed: Claimed


@dataclass(frozen=True)
class _Claim:
    """What one claim transaction decided: attempts to send, and those to ask about."""

    sends: list[SentAttempt]
    reconcile: list[int]
    held: int = 0
    skipped: int = 0
    final: int = 0


class BatchCharger:
    """Charges attempts by the batch; safe to call again with the same ids."""

    def __init__(self, charger: Charger, *, concurrency: int = 64) -> None:
        self.charger = charger
        self.settlement = BatchSettlement(charger.settlement, charger.finish)
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="charge")
        self._free = concurrency
        self._slots = threading.Condition()

    @contextmanager
    def _reserve(self, count: int) -> Iterator[None]:
        """Hold ``count`` of the pool's threads before claiming: a claimed attempt never
        waits in a queue while its send lease runs down."""
        with self._slots:
            self._slots.wait_for(lambda: self._free >= count)
            self._free -= count
        try:
            yield
        finally:
            with self._slots:
                self._free += count
                self._slots.notify_all()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def charge_batch(self, attempt_ids: Sequence[int]) -> dict[str, int]:
        """Claim, send and settle ``attempt_ids``; returns how many ended how."""
        ids = sorted(set(attempt_ids))
        results: Counter[str] = Counter()
        for start in range(0, len(ids), self.concurrency):
            chunk = ids[start : start + self.concurrency]
            with self._reserve(len(chunk)):
                results.update(self._charge_chunk(chunk))
        return {word: count for word, count in results.items() if count}

    def _charge_chunk(self, ids: list[int]) -> Counter[str]:
        claim = self._claim(ids)
        outcomes = list(self._pool.map(self._send, claim.sends))
        sent = [
            Charged(
                attempt.id,
                attempt.invoice_id,
                attempt.subscription_id,
                attempt.trigger,
                attempt.claimed.charge.order_number,
                outcome,
                attempt.claimed.account,
            )
            for attempt, outcome in zip(claim.sends, outcomes, strict=True)
            if outcome is not None
        ]
        results = Counter(self.settlement.settle(sent))
        results["stalled"] += len(claim.sends) - len(sent)
        results["paused"] += claim.held
        results["skipped"] += claim.skipped
        results["already_final"] += claim.final
        for attempt_id in claim.reconcile:
            # Redelivered, or sent by a worker that died: never sent again.
            results[self.charger.reconcile(attempt_id)] += 1
        return results

    def _send(self, attempt: SentAttempt) -> Outcome | None:
        with log_context(
            attempt_id=attempt.id,
            invoice_id=attempt.invoice_id,
            subscription_id=attempt.subscription_id,
            order_number=attempt.claimed.charge.order_number,
        ):
            try:
                return self.charger.send_claimed(attempt.claimed)
            except Exception:  # our own bug or a bad request: left "sending", settled by status
                log.exception("charge: attempt %s: the call failed", attempt.id)
                return None

    def _claim(self, ids: list[int]) -> _Claim:
        charger = self.charger
        now = charger.clock()
        with charger.db.transaction() as session:
            rows = _locked_rows(session, ids)
            if len(rows) < len(ids):
                missing = sorted(set(ids) - {row.id for row in rows})
                log.warning("charge: attempts %s do not exist", missing)
            paused = paused_accounts(session, now)
            to_send, reconcile, held, skipped, final = [], [], [], 0, 0
            for row in rows:
                verdict = claim_verdict(
                    AttemptState(row.state),
                    AttemptTrigger(row.trigger),
                    row.invoice_status,
                    row.subscription_status,
                    charging_allowed=row.merchant_account not in paused,
                )
                if verdict.step is Step.SEND:
                    to_send.append(row)
                elif verdict.step is Step.SKIP:
                    attempt = session.get_one(ChargeAttempt, row.id)
                    skip_unsent(session, attempt, verdict.reason, verdict.why, now)
                    skipped += 1
                elif verdict.step is Step.HOLD:
                    held.append(row.id)
                elif verdict.step is Step.RECONCILE:
                    reconcile.append(row.id)
                else:
                    final += 1
            if held:  # the scheduler sends them again once charging resumes
                session.execute(
                    update(ChargeAttempt)
                    .where(ChargeAttempt.id.in_(held))
                    .values(enqueued_at=None, updated_at=now)
                )
                log.warning("charge: %d attempt(s) held back: charging is paused", len(held))
            sends = self._start_sending(session, to_send, now) if to_send else []
        return _Claim(sends, reconcile, held=len(held), skipped=skipped, final=final)

    def _start_sending(
        self, session: Session, rows: list[Row[Any]], now: datetime
    ) -> list[SentAttempt]:
        """Move ``rows`` to ``sending`` in one statement; the lease starts on the one clock.
        Elapsed time is then measured on this host from just before the lease starts, so a
        worker never thinks more of the lease is left than there is."""
        charger = self.charger
        claimed_at = charger.clock()
        sent_at = charger.lease_clock(session)
        bulk_update(
            session,
            ChargeAttempt,
            [
                {
                    "id": row.id,
                    "state": AttemptState.SENDING.value,
                    "binding_version": row.binding_version,
                    "sent_at": sent_at,
                    "updated_at": now,
                }
                for row in rows
            ],
        )
        gateway = charger.gateway
        return [
            SentAttempt(
                id=row.id,
                invoice_id=row.invoice_id,
                subscription_id=row.subscription_id,
                trigger=AttemptTrigger(row.trigger),
                claimed=Claimed(
                    _fiscal(
                        gateway,
                        row,
                        charge_request(
                            row.order_number,
                            row.amount,
                            row.currency,
                            row.binding_id,
                            row.description,
                            row.customer_id,
                        ),
                    ),
                    claimed_at=claimed_at,
                    account=row.merchant_account,
                ),
            )
            for row in rows
        ]


def _locked_rows(session: Session, ids: list[int]) -> Sequence[Row[Any]]:
    """The attempts with what the claim rule reads, attempts and invoices locked (in id
    order, as the single path locks them: attempt, then its invoice)."""
    if not ids:
        return []
    query = (
        select(
            ChargeAttempt.id,
            ChargeAttempt.state,
            ChargeAttempt.trigger,
            ChargeAttempt.invoice_id,
            ChargeAttempt.subscription_id,
            ChargeAttempt.order_number,
            ChargeAttempt.amount,
            ChargeAttempt.currency,
            Invoice.status.label("invoice_status"),
            Subscription.status.label("subscription_status"),
            Subscription.binding_version,
            Subscription.binding_id,
            Subscription.description,
            Subscription.customer_id,
            Subscription.merchant_account,
            Subscription.customer_email,
            Subscription.customer_phone,
        )
        .join(Invoice, Invoice.id == ChargeAttempt.invoice_id)
        .join(Subscription, Subscription.id == ChargeAttempt.subscription_id)
        .where(ids_in(session, ChargeAttempt.id, ids))
        .order_by(ChargeAttempt.id)
        .with_for_update(of=(ChargeAttempt, Invoice))
    )
    rows: Sequence[Row[Any]] = session.execute(query).all()  # type: ignore[assignment]
    return rows


def _fiscal(gateway: Gateway, row: Row[Any], charge: ChargeRequest) -> ChargeRequest:
    """The charge with the customer's contacts when the account issues fiscal receipts."""
    if fiscal_receipts(gateway, row.merchant_account):
        return with_contacts(charge, row.customer_email, row.customer_phone)
    return charge
