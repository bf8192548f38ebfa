"""What the sandbox gateway does with a charge, chosen by the binding id. Pure: no I/O, no clock.

The behaviour is the binding id's first hyphen-separated token, case-insensitive
(``insufficient-7f3a`` → ``insufficient``). Anything unrecognised behaves as ``approve``.

=================  ==========================================================================
token              recurrentPayment.do answer (and what the "bank" records)
=================  ==========================================================================
``approve``        paid: ``success: true``, orderStatus 2, actionCode 0; order DEPOSITED
``insufficient``   declined: error "1" "The funds on the card are not sufficient", actionCode
                   116, orderStatus 6; order DECLINED
``recoverN``       the first N charges recorded for that binding are ``insufficient``, later
                   ones ``approve`` (``recover`` alone means ``recover1``)
``notfound``       error "2" "The binding is not found"; no order
``disabled``       error "5" "Using binding is disabled"; no order
``expired``        declined like ``insufficient`` but actionCode 101 (expired card)
``stolen``         declined like ``insufficient`` but actionCode 208 (lost card)
``zerodecline``    declined (orderStatus 6, actionCode 116) yet answered ``success: true``
                   with errorCode "0": the "errorCode 0 is not paid" trap
``syserror``       error "7" "System error"; no order
``http500``        HTTP 500 with an HTML page; no order
``html``           HTTP 200 with a ``text/html`` anti-DDoS page; no order
``slow``           approves after ``slow_delay`` seconds (the order exists meanwhile, pending)
``timeout``        order DEPOSITED at once, the answer comes only after ``timeout_delay``
``pending``        ``success: true`` with orderStatus 0 (order CREATED, actionCode -30001);
                   becomes DEPOSITED through status queries (see the ledger)
``flaky``          odd calls for that binding get HTTP 500 (no order), even calls approve
``stuck``          the binding's first order stays CREATED (orderStatus 0) for good: neither
                   paid nor declined until decline.do; later orders approve
``holdrefuse``     approves; two-phase: the first deposit.do of each order is refused
                   (errorCode 7), a later one captures
``holdtimeout``    approves; two-phase: deposit.do captures at once but answers only after
                   ``timeout_delay``
=================  ==========================================================================

Chaos faults (:class:`Fault`) wrap any plan: ``HTTP_500`` before charging, ``TIMEOUT``
after charging (the plan is carried out, the answer withheld) or ``SLOW``.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from enum import StrEnum


class Kind(StrEnum):
    """The behaviour families, named by their binding-id token."""

    APPROVE = "approve"
    INSUFFICIENT = "insufficient"
    RECOVER = "recover"
    NOTFOUND = "notfound"
    DISABLED = "disabled"
    EXPIRED = "expired"
    STOLEN = "stolen"
    ZERODECLINE = "zerodecline"
    SYSERROR = "syserror"
    HTTP500 = "http500"
    HTML = "html"
    SLOW = "slow"
    TIMEOUT = "timeout"
    PENDING = "pending"
    FLAKY = "flaky"
    STUCK = "stuck"
    HOLDREFUSE = "holdrefuse"
    HOLDTIMEOUT = "holdtimeout"


class Result(StrEnum):
    """What happens to the charge."""

    APPROVED = "approved"  # order DEPOSITED
    DECLINED = "declined"  # order DECLINED (orderStatus 6)
    PENDING = "pending"  # order CREATED (orderStatus 0), settled by status queries
    STUCK = "stuck"  # order CREATED (orderStatus 0) for good, until decline.do
    REFUSED = "refused"  # error body, no order
    HTTP_500 = "http_500"  # HTML error page with status 500, no order
    HTML_PAGE = "html_page"  # HTML page with status 200, no order


class Timing(StrEnum):
    """When the answer is sent."""

    NORMAL = "normal"
    SLOW = "slow"  # after slow_delay; the order is pending meanwhile
    HANG = "hang"  # order settled at once, answer after timeout_delay


class Fault(StrEnum):
    """A chaos fault injected by the server-wide fault rate."""

    HTTP_500 = "http_500"
    TIMEOUT = "timeout"
    SLOW = "slow"


@dataclass(frozen=True)
class Behaviour:
    """A parsed behaviour; ``count`` is N of ``recoverN``."""

    kind: Kind
    count: int = 0


@dataclass(frozen=True)
class Plan:
    """The decided answer to one recurrentPayment.do call."""

    result: Result
    timing: Timing = Timing.NORMAL
    error_code: str = "0"
    message: str = ""
    action_code: int = 0
    action_description: str = ""
    #: A decline answered with ``success: true`` / errorCode "0" (``zerodecline``).
    success_flag_on_decline: bool = False

    @property
    def records_order(self) -> bool:
        """Whether the gateway registers an order for this call."""
        return self.result in (Result.APPROVED, Result.DECLINED, Result.PENDING, Result.STUCK)


INSUFFICIENT_FUNDS = "The funds on the card are not sufficient"
PENDING_ACTION_CODE = -30001
PENDING_DESCRIPTION = "Payment is being processed"

_APPROVE = Plan(Result.APPROVED)
_INSUFFICIENT = Plan(
    Result.DECLINED,
    error_code="1",
    message=INSUFFICIENT_FUNDS,
    action_code=116,
    action_description=INSUFFICIENT_FUNDS,
)
_HTTP_500 = Plan(Result.HTTP_500)

#: Behaviours whose plan does not depend on the binding's history.
_FIXED: dict[Kind, Plan] = {
    Kind.APPROVE: _APPROVE,
    Kind.INSUFFICIENT: _INSUFFICIENT,
    Kind.NOTFOUND: Plan(Result.REFUSED, error_code="2", message="The binding is not found"),
    Kind.DISABLED: Plan(Result.REFUSED, error_code="5", message="Using binding is disabled"),
    Kind.EXPIRED: Plan(
        Result.DECLINED,
        error_code="1",
        message="The card has expired",
        action_code=101,
        action_description="Card has expired",
    ),
    Kind.STOLEN: Plan(
        Result.DECLINED,
        error_code="1",
        message="The card is lost",
        action_code=208,
        action_description="Card is lost",
    ),
    Kind.ZERODECLINE: replace(_INSUFFICIENT, success_flag_on_decline=True),
    Kind.SYSERROR: Plan(Result.REFUSED, error_code="7", message="System error"),
    Kind.HTTP500: _HTTP_500,
    Kind.HTML: Plan(Result.HTML_PAGE),
    Kind.SLOW: Plan(Result.APPROVED, timing=Timing.SLOW),
    Kind.TIMEOUT: Plan(Result.APPROVED, timing=Timing.HANG),
    Kind.PENDING: Plan(
        Result.PENDING, action_code=PENDING_ACTION_CODE, action_description=PENDING_DESCRIPTION
    ),
    Kind.HOLDREFUSE: _APPROVE,
    Kind.HOLDTIMEOUT: _APPROVE,
}
_STUCK = Plan(Result.STUCK, action_code=PENDING_ACTION_CODE, action_description=PENDING_DESCRIPTION)

#: What deposit.do does with an order, by the behaviour of its binding.
CAPTURE_BEHAVIOURS = {Kind.HOLDREFUSE: "refuse_once", Kind.HOLDTIMEOUT: "hang"}

_RECOVER = re.compile(r"recover([0-9]{0,6})")


def behaviour_for(binding_id: str) -> Behaviour:
    """Parse the behaviour from a binding id (first hyphen-separated token)."""
    token = binding_id.split("-", 1)[0].strip().lower()
    match = _RECOVER.fullmatch(token)
    if match:
        return Behaviour(Kind.RECOVER, int(match.group(1) or "1"))
    try:
        return Behaviour(Kind(token))
    except ValueError:
        return Behaviour(Kind.APPROVE)


def plan_for(behaviour: Behaviour, *, call_number: int, prior_orders: int) -> Plan:
    """Decide the answer.

    ``call_number`` is this call's 1-based number among the calls for the binding;
    ``prior_orders`` is how many orders the ledger already holds for the binding.
    """
    if behaviour.kind is Kind.RECOVER:
        return _INSUFFICIENT if prior_orders < behaviour.count else _APPROVE
    if behaviour.kind is Kind.STUCK:
        return _STUCK if prior_orders == 0 else _APPROVE
    if behaviour.kind is Kind.FLAKY:
        return _HTTP_500 if call_number % 2 == 1 else _APPROVE
    return _FIXED[behaviour.kind]


def draw_fault(rng: random.Random, rate: float) -> Fault | None:
    """With probability ``rate``, one of the chaos faults (uniformly); otherwise ``None``."""
    if rate <= 0.0 or rng.random() >= rate:
        return None
    return rng.choice(list(Fault))


def apply_fault(plan: Plan, fault: Fault | None) -> Plan:
    """The plan as changed by a chaos fault."""
    if fault is None:
        return plan
    if fault is Fault.HTTP_500:
        return _HTTP_500
    if fault is Fault.TIMEOUT:
        return replace(plan, timing=Timing.HANG)
    return replace(plan, timing=Timing.SLOW)
