"""What the answer of refund.do or reverse.do means: accepted, refused, or unknown.

errorCode "0" is accepted; an explicit other code is a refusal; a request that may have been
processed without a clear answer (timeout, lost connection, 5xx, an HTML page, a JSON body
without errorCode) is UNKNOWN and never reported as a success. Pure: it never calls the
gateway (settling an unknown refund by the order's status is :mod:`.classify_refunds`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from billing.gateway.models import ActionResponse
from billing.gateway.results import (
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    HttpErrorReply,
    JsonReply,
    NotJsonReply,
    ReadTimedOut,
)


class RefundState(StrEnum):
    REQUESTED = "requested"  # stored; the gateway call has not come back (yet)
    SUCCEEDED = "succeeded"  # the gateway answered errorCode 0
    FAILED = "failed"  # the gateway refused, or the request certainly never left
    UNKNOWN = "unknown"  # sent, no answer: may have been processed; never assumed either way


#: Refund states whose money may have left (or will): they count against the paid amount.
TAKEN_STATES = (RefundState.REQUESTED.value, RefundState.SUCCEEDED.value, RefundState.UNKNOWN.value)


@dataclass(frozen=True)
class ActionOutcome:
    """What the answer of refund.do / reverse.do means."""

    state: RefundState
    message: str
    error_code: str | None = None
    http_status: int | None = None


def classify_action(result: GatewayResult) -> ActionOutcome:
    """errorCode "0" is accepted; an explicit other code is a refusal; a request that may
    have been processed without a clear answer (timeout, lost connection, 5xx, an HTML page,
    a JSON body without errorCode) is UNKNOWN — never a success."""
    if isinstance(result, JsonReply):
        status = result.http_status
        parsed = ActionResponse.model_validate(result.body)
        code = parsed.error_code
        message = (parsed.error_message or "").strip()[:300]
        if code is None:
            error = result.body.get("error")
            if isinstance(error, dict):
                raw = error.get("code")
                code = None if raw is None else str(raw).strip() or None
                text = error.get("message") or error.get("description") or ""
                message = message or (text if isinstance(text, str) else "")[:300]
        if code is None:
            return ActionOutcome(
                RefundState.UNKNOWN, "the gateway's answer has no errorCode", None, status
            )
        if code == "0":
            if not 200 <= status <= 299:
                return ActionOutcome(
                    RefundState.UNKNOWN, f"errorCode 0 with HTTP {status}", code, status
                )
            return ActionOutcome(RefundState.SUCCEEDED, message or "accepted", code, status)
        return ActionOutcome(RefundState.FAILED, message or f"errorCode {code}", code, status)
    if isinstance(result, ConnectionFailed | ReadTimedOut | ConnectionLost):
        if result.request_sent is False:  # the request certainly never left
            return ActionOutcome(RefundState.FAILED, f"not sent: {result.detail}"[:300])
        return ActionOutcome(
            RefundState.UNKNOWN, f"no answer (may have been processed): {result.detail}"[:300]
        )
    if isinstance(result, HttpErrorReply):
        if result.http_status >= 500:
            return ActionOutcome(
                RefundState.UNKNOWN,
                f"HTTP {result.http_status} (may have been processed behind it)",
                None,
                result.http_status,
            )
        return ActionOutcome(
            RefundState.FAILED, f"refused with HTTP {result.http_status}", None, result.http_status
        )
    if isinstance(result, NotJsonReply):
        return ActionOutcome(
            RefundState.UNKNOWN,
            f"not a JSON answer (HTTP {result.http_status}); may have been processed",
            None,
            result.http_status,
        )
    return ActionOutcome(RefundState.UNKNOWN, "unrecognised result")
