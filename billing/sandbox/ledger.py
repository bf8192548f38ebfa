"""The sandbox "bank": an in-memory store of orders and per-binding call counters.

Thread-safe and safe to use from asyncio handlers (one re-entrant lock, never held
across an ``await``). Orders are immutable snapshots; a change replaces the order.
:meth:`Ledger.atomic` groups several calls into one critical section.

What the bank does after a payment (:meth:`Order.refund`, :meth:`Order.reverse`), as the
gateway documents it and where it is silent, as chosen here:

* a refund needs a DEPOSITED order, or one already partially refunded (REFUNDED with
  money left); amount ``None``/0 refunds what is left, any other amount must not exceed
  what is left (deposited minus refunded). After it the order is REFUNDED (orderStatus 4),
  even when partial;
* an ``externalRefundId`` already used *on the same order* answers success at once and
  refunds nothing more, whatever the amount of the repeat and the order's state now
  (the scope, per order, is our choice: a repeat on another order is a new refund);
* a reversal needs a DEPOSITED order (not partially refunded) deposited the same UTC
  day; the order becomes REVERSED (orderStatus 3). A held (APPROVED) order can always be
  reversed: that releases the hold;
* two-phase: an approved order of a two-phase merchant is held (APPROVED, orderStatus 1)
  until deposit.do captures it (:meth:`Order.capture`; amount 0 = all, less = a partial
  capture, more = refused); a capture of an order that is not held is refused;
* decline.do (:meth:`Order.decline`) makes an order that is not paid or authorised yet
  (CREATED) final: DECLINED with actionCode 4005; any other order is refused.

An order refunded or reversed was still charged once: :meth:`Ledger.deposited_count`
counts it.

The ledger also keeps a bounded log of the gateway calls it served (time and method,
:meth:`Ledger.requests`) so a benchmark can check the calls per second the gateway saw.
Every operation is O(1) in the number of orders (except listing them): the sandbox must
never be the bottleneck of a benchmark.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

#: How many gateway calls the request log keeps (the oldest are forgotten first).
REQUEST_LOG_SIZE = 500_000


class OrderState(StrEnum):
    """paymentState of an order as the gateway reports it."""

    CREATED = "CREATED"
    APPROVED = "APPROVED"  # two-phase: the funds are held until deposit.do
    DEPOSITED = "DEPOSITED"
    DECLINED = "DECLINED"
    REVERSED = "REVERSED"
    REFUNDED = "REFUNDED"


#: orderStatus (getOrderStatusExtended.do) for each state.
ORDER_STATUS = {
    OrderState.CREATED: 0,
    OrderState.APPROVED: 1,
    OrderState.DEPOSITED: 2,
    OrderState.REVERSED: 3,
    OrderState.REFUNDED: 4,
    OrderState.DECLINED: 6,
}

#: States of an order that took the money (and may have given some or all of it back).
CHARGED_STATES = frozenset({OrderState.DEPOSITED, OrderState.REFUNDED, OrderState.REVERSED})


@dataclass(frozen=True)
class RefundRecord:
    """One refund the bank made on an order."""

    refund_id: str
    amount: int
    date_ms: int
    external_refund_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        """An entry of the ``refunds`` block of getOrderStatusExtended.do."""
        return {
            "refundId": self.refund_id,
            "externalRefundId": self.external_refund_id,
            "amount": self.amount,
            "date": self.date_ms,
        }


@dataclass(frozen=True)
class Refusal:
    """Why the bank refused a refund or a reversal (answered with errorCode "7")."""

    message: str


def _utc_day(ms: int) -> date:
    return datetime.fromtimestamp(ms / 1000, UTC).date()


@dataclass(frozen=True)
class Order:
    """One order registered at the sandbox gateway."""

    order_id: str
    order_number: str
    binding_id: str
    amount: int
    currency: str
    state: OrderState
    action_code: int
    created_ms: int
    action_code_description: str = ""
    description: str = ""
    client_id: str = ""
    merchant_params: tuple[tuple[str, str], ...] = ()
    deposited_ms: int | None = None
    #: For ``pending`` orders: status queries still answered as pending before
    #: the order becomes DEPOSITED. ``None``: status queries do not change the order.
    pending_queries_left: int | None = None
    #: Sum of the refunds made (``refunds``).
    refunded_amount: int = 0
    refunds: tuple[RefundRecord, ...] = ()
    reversed_ms: int | None = None
    #: Two-phase: an approval holds the funds (APPROVED) until deposit.do.
    hold: bool = False
    #: What deposit.do does for this order: "" captures, "refuse_once" refuses the first
    #: capture, "hang" captures but answers only after the timeout delay.
    capture_behaviour: str = ""
    #: The amount captured by deposit.do (None: all of it, or not captured).
    captured_amount: int | None = None

    @property
    def order_status(self) -> int:
        return ORDER_STATUS[self.state]

    @property
    def charged(self) -> bool:
        """Whether the order took the money (even if it was refunded or reversed since)."""
        return self.state in CHARGED_STATES

    @property
    def deposited_amount(self) -> int:
        """What was debited and not reversed (refunds do not change it)."""
        if self.state not in (OrderState.DEPOSITED, OrderState.REFUNDED):
            return 0
        return self.amount if self.captured_amount is None else self.captured_amount

    @property
    def refundable_amount(self) -> int:
        """What a refund may still give back."""
        return self.deposited_amount - self.refunded_amount

    def refund(
        self, amount: int | None, external_refund_id: str | None, refund_id: str, now_ms: int
    ) -> Order | Refusal:
        """This order after refund.do (itself for a repeated ``external_refund_id``).

        ``amount`` None or 0 refunds what is left.
        """
        if external_refund_id and any(
            r.external_refund_id == external_refund_id for r in self.refunds
        ):
            return self
        if self.state not in (OrderState.DEPOSITED, OrderState.REFUNDED):
            return Refusal(f"Payment must be in a correct state (the order is {self.state.value})")
        left = self.refundable_amount
        if left <= 0:
            return Refusal("Payment must be in a correct state (the order is fully refunded)")
        to_refund = amount or left
        if to_refund > left:
            return Refusal(
                f"Invalid refund amount: {to_refund} is more than the {left} left to refund"
            )
        record = RefundRecord(refund_id, to_refund, now_ms, external_refund_id or None)
        return replace(
            self,
            state=OrderState.REFUNDED,
            refunded_amount=self.refunded_amount + to_refund,
            refunds=(*self.refunds, record),
        )

    def reverse(self, now_ms: int) -> Order | Refusal:
        """This order after reverse.do: a held order is released; a DEPOSITED one is reversed
        only on the (UTC) day of the deposit."""
        if self.state is OrderState.APPROVED:
            return replace(self, state=OrderState.REVERSED, reversed_ms=now_ms)
        if self.state is not OrderState.DEPOSITED:
            return Refusal(f"Payment must be in a correct state (the order is {self.state.value})")
        deposited_on = _utc_day(self.deposited_ms if self.deposited_ms is not None else now_ms)
        if deposited_on != _utc_day(now_ms):
            return Refusal(
                f"Reversal is possible only on the day of payment (deposited {deposited_on}, "
                "UTC): refund it instead"
            )
        return replace(self, state=OrderState.REVERSED, reversed_ms=now_ms)

    def capture(self, amount: int | None, now_ms: int) -> Order | Refusal:
        """This order after deposit.do: only a held (APPROVED) order; ``amount`` None/0
        captures all of it, a smaller amount is a partial (final) capture."""
        if self.state is not OrderState.APPROVED:
            return Refusal(f"Payment must be in a correct state (the order is {self.state.value})")
        if amount is not None and amount > self.amount:
            return Refusal(f"Deposit amount {amount} is more than the {self.amount} held")
        captured = self.deposited(now_ms)
        return captured if amount is None else replace(captured, captured_amount=amount)

    def decline(self) -> Order | Refusal:
        """This order after decline.do: only one not paid or authorised yet (CREATED)."""
        if self.state is not OrderState.CREATED:
            return Refusal(f"Incorrect order state (the order is {self.state.value})")
        return replace(
            self,
            state=OrderState.DECLINED,
            action_code=4005,
            action_code_description="Declined by merchant",
            pending_queries_left=None,
        )

    def approved(self, now_ms: int) -> Order:
        """This order once the bank approves it: held for a two-phase merchant, else paid."""
        if self.hold:
            return replace(
                self,
                state=OrderState.APPROVED,
                action_code=0,
                action_code_description="",
                pending_queries_left=None,
            )
        return self.deposited(now_ms)

    def deposited(self, now_ms: int) -> Order:
        """This order, paid."""
        return replace(
            self,
            state=OrderState.DEPOSITED,
            action_code=0,
            action_code_description="",
            deposited_ms=now_ms,
            pending_queries_left=None,
        )

    def to_json(self) -> dict[str, Any]:
        """The order as listed by ``GET /sandbox/ledger``."""
        return {
            "orderNumber": self.order_number,
            "orderId": self.order_id,
            "bindingId": self.binding_id,
            "amount": self.amount,
            "currency": self.currency,
            "state": self.state.value,
            "orderStatus": self.order_status,
            "actionCode": self.action_code,
            "created": self.created_ms,
            "deposited": self.deposited_ms,
            "depositedAmount": self.deposited_amount,
            "refundedAmount": self.refunded_amount,
            "refunds": [r.to_json() for r in self.refunds],
            "reversed": self.reversed_ms,
            "additionalParameters": dict(self.merchant_params),
        }


class Ledger:
    """In-memory orders keyed by orderId, unique by orderNumber."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._by_id: dict[str, Order] = {}
        self._id_by_number: dict[str, str] = {}
        self._calls: dict[str, int] = {}
        #: Orders registered per binding id (kept with ``add`` so a charge costs O(1)).
        self._orders_by_binding: dict[str, int] = {}
        #: (epoch ms, method) of the latest gateway calls, oldest first.
        self._requests: deque[tuple[int, str]] = deque(maxlen=REQUEST_LOG_SIZE)

    @contextmanager
    def atomic(self) -> Iterator[Ledger]:
        """Hold the lock for several calls (never ``await`` inside)."""
        with self._lock:
            yield self

    def add(self, order: Order) -> bool:
        """Register ``order``; ``False`` (and nothing stored) if its orderNumber is taken."""
        with self._lock:
            if order.order_number in self._id_by_number:
                return False
            self._by_id[order.order_id] = order
            self._id_by_number[order.order_number] = order.order_id
            binding = order.binding_id
            self._orders_by_binding[binding] = self._orders_by_binding.get(binding, 0) + 1
            return True

    def put(self, order: Order) -> bool:
        """Replace a stored order by a new version of it; ``False`` if it is gone (reset)."""
        with self._lock:
            current = self._by_id.get(order.order_id)
            if current is None or current.order_number != order.order_number:
                return False
            self._by_id[order.order_id] = order
            return True

    def find_by_id(self, order_id: str) -> Order | None:
        with self._lock:
            return self._by_id.get(order_id)

    def find_by_number(self, order_number: str) -> Order | None:
        with self._lock:
            order_id = self._id_by_number.get(order_number)
            return None if order_id is None else self._by_id[order_id]

    def observe(self, order_id: str, now_ms: int) -> Order | None:
        """The order as a status query sees it.

        A ``pending`` order with no queries left becomes DEPOSITED now; otherwise the
        query is counted and the order is still shown pending.
        """
        with self._lock:
            order = self._by_id.get(order_id)
            if order is None or order.pending_queries_left is None:
                return order
            if order.pending_queries_left > 0:
                left = order.pending_queries_left - 1
                self._by_id[order_id] = replace(order, pending_queries_left=left)
                return order
            paid = order.approved(now_ms)
            self._by_id[order_id] = paid
            return paid

    def orders(self, state: OrderState | None = None) -> list[Order]:
        """All orders in registration order, optionally only those in ``state``."""
        with self._lock:
            return [o for o in self._by_id.values() if state is None or o.state is state]

    def deposited_count(self) -> int:
        """How many orders took the money, counting those refunded or reversed since
        (each was charged once)."""
        with self._lock:
            return sum(1 for o in self._by_id.values() if o.charged)

    def count_for_binding(self, binding_id: str) -> int:
        """How many orders were registered with ``binding_id``."""
        with self._lock:
            return self._orders_by_binding.get(binding_id, 0)

    def next_call(self, binding_id: str) -> int:
        """Count one more charge call for ``binding_id``; its 1-based number."""
        with self._lock:
            number = self._calls.get(binding_id, 0) + 1
            self._calls[binding_id] = number
            return number

    def record_request(self, method: str, now_ms: int) -> None:
        """Note one gateway call (``recurrentPayment.do``...) at ``now_ms``."""
        with self._lock:
            self._requests.append((now_ms, method))

    def requests(self, since_ms: int = 0) -> list[tuple[int, str]]:
        """The gateway calls noted at or after ``since_ms`` (the latest
        :data:`REQUEST_LOG_SIZE` at most), oldest first."""
        with self._lock:
            return [r for r in self._requests if r[0] >= since_ms]

    def reset(self) -> None:
        """Forget every order, counter and noted call."""
        with self._lock:
            self._by_id.clear()
            self._id_by_number.clear()
            self._calls.clear()
            self._orders_by_binding.clear()
            self._requests.clear()
