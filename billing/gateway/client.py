"""The httpx client of the RBS-family gateway.

Every call returns a :data:`~billing.gateway.results.GatewayResult`; a transport
problem never escapes as an httpx exception. Only our own mistakes (a request the
gateway's rules forbid, a bad base URL) raise :class:`billing.errors.GatewayError`,
before anything is sent. This module builds and sends the calls; how a parameter is
encoded and how an answer becomes a result lives in :mod:`billing.gateway.wire`.

Mapping (httpx 0.28 exception tree, see ``httpx/_exceptions.py``):

* 2xx/4xx with a JSON object → :class:`JsonReply`;
* 5xx (any body), and any other non-2xx without a JSON object → :class:`HttpErrorReply`;
* 2xx whose body is not a JSON object (HTML, garbage, an array), or an object our
  models cannot read → :class:`NotJsonReply`;
* ``ConnectError`` (refused, DNS failure, TLS handshake), ``ConnectTimeout``,
  ``PoolTimeout``, ``UnsupportedProtocol`` → :class:`ConnectionFailed` (not sent);
* ``ReadTimeout`` → :class:`ReadTimedOut` (sent, no answer);
* ``WriteTimeout``, ``ReadError``, ``WriteError``, ``RemoteProtocolError``, any other
  ``TransportError`` and the remaining ``RequestError`` s (e.g. ``DecodingError``) →
  :class:`ConnectionLost` (may have been sent).

Logs (logger ``billing.gateway``) carry the method, orderNumber, elapsed ms, the
result kind and the HTTP status; never the password, the token or a full bindingId.
Everything kept from an answer (the JSON body, a text snippet, an error detail, the
request id header) goes through :mod:`billing.gateway.redact` first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Final, Self

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from billing import __version__
from billing.domain.dialects import Dialect, Encoding, parse_dialect, route
from billing.domain.model import mask_binding
from billing.errors import GatewayError
from billing.gateway.http_pool import ShardedHttp
from billing.gateway.models import ActionResponse, OrderStatusResponse, RecurrentPaymentResponse
from billing.gateway.port import (
    ChargeRequest,
    DeclineRequest,
    DepositRequest,
    RefundRequest,
    ReverseRequest,
)
from billing.gateway.redact import Secrets
from billing.gateway.request_checks import (
    ascii_digits,
    check_amount,
    check_base_url,
    check_order_number,
    check_text,
)
from billing.gateway.results import (
    ConnectionFailed,
    ConnectionLost,
    GatewayResult,
    ReadTimedOut,
)
from billing.gateway.wire import SNIPPET_LIMIT as SNIPPET_LIMIT
from billing.gateway.wire import form_value, log_result, to_result, transport_detail
from billing.observability.metrics import observe_gateway_call

__all__ = ["GatewayClient", "GatewayConfig"]

_MAX_BINDING_ID: Final = 255
_MAX_DESCRIPTION: Final = 512
_MAX_CLIENT_ID: Final = 255
_MAX_ORDER_ID: Final = 64
_MAX_REFUND_ID: Final = 255


class GatewayConfig(BaseModel):
    """How to reach the gateway. Immutable; ``repr``/``str`` never show the secrets."""

    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)

    base_url: str
    username: str
    password: SecretStr
    #: When set, sent instead of userName/password.
    token: SecretStr | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=30.0, gt=0)
    write_timeout: float = Field(default=10.0, gt=0)
    pool_timeout: float = Field(default=5.0, gt=0)
    max_connections: int = Field(default=50, ge=1)
    #: Where each method lives and how its body is encoded (:mod:`billing.domain.dialects`).
    dialect: Dialect = Dialect.RBS

    @field_validator("dialect", mode="before")
    @classmethod
    def _check_dialect(cls, value: object) -> Dialect:
        return parse_dialect(value)

    def method_url(self, method: str) -> str:
        """The URL of ``method``: a base URL with a path (``…/payment/rest``) is used as is
        for every method; a bare host gets the dialect's base path."""
        if httpx.URL(self.base_url).path not in ("", "/"):
            return f"{self.base_url}/{method}"
        return f"{self.base_url}{route(self.dialect, method).path(method)}"

    @field_validator("base_url")
    @classmethod
    def _check_base_url(cls, value: str) -> str:
        return check_base_url(value)


class GatewayClient:
    """One connection pool (:class:`ShardedHttp`) for all calls; share one per process,
    close it at exit."""

    def __init__(self, config: GatewayConfig, *, transport: httpx.BaseTransport | None = None):
        self._config = config
        self._http = ShardedHttp(
            max_connections=config.max_connections,
            timeout=httpx.Timeout(
                connect=config.connect_timeout,
                read=config.read_timeout,
                write=config.write_timeout,
                pool=config.pool_timeout,
            ),
            transport=transport,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": f"billing/{__version__}"},
        )

    def __repr__(self) -> str:
        return f"GatewayClient(base_url={self._config.base_url!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- methods --------------------------------------------------------------------------------

    def charge(self, request: ChargeRequest) -> GatewayResult:
        """Charge a binding: POST to ``recurrentPayment.do`` (JSON in both dialects).

        Raises :class:`GatewayError` (nothing sent) when the request breaks the
        gateway's rules: orderNumber 1..32 chars, amount a positive int of at most
        12 digits, currency 3 digits, language 2 letters.
        """
        order_number, binding_id, amount = request.order_number, request.binding_id, request.amount
        currency, description = request.currency, request.description
        client_id, language = request.client_id, request.language
        check_order_number(order_number)
        check_text("bindingId", binding_id, _MAX_BINDING_ID)
        check_amount(amount, minimum=1)
        if not (isinstance(currency, str) and len(currency) == 3 and ascii_digits(currency)):
            raise GatewayError("currency must be a numeric ISO 4217 code of 3 digits, e.g. '643'")
        if description is not None:
            check_text("description", description, _MAX_DESCRIPTION, allow_empty=True)
        if client_id is not None:
            check_text("clientId", client_id, _MAX_CLIENT_ID)
        if language is not None and not (
            isinstance(language, str)
            and len(language) == 2
            and language.isascii()
            and language.isalpha()
        ):
            raise GatewayError("language must be 2 ISO 639-1 letters, e.g. 'en'")

        payload: dict[str, Any] = {
            **self._credentials(),
            "orderNumber": order_number,
            "bindingId": binding_id,
            "amount": amount,
            "currency": currency,
        }
        if language is not None:
            payload["language"] = language
        if description:
            payload["description"] = description
        extra = _additional_parameters(request)
        if extra:
            payload["additionalParameters"] = extra
        return self._call(
            "recurrentPayment.do",
            params=payload,
            parse=RecurrentPaymentResponse.model_validate,
            log_fields={"orderNumber": order_number, "binding": mask_binding(binding_id)},
            binding_id=binding_id,
            contacts=(request.customer_email, request.customer_phone),
        )

    def order_status(
        self, *, order_number: str | None = None, order_id: str | None = None
    ) -> GatewayResult:
        """Ask for an order's status: POST to ``getOrderStatusExtended.do`` (form in the
        classic RBS dialect, JSON in all2pay's).

        ``order_id`` (the gateway's id) has priority over ``order_number`` (ours): when
        both are given only ``orderId`` is sent.
        """
        params: dict[str, Any] = self._credentials()
        if order_id is not None:
            check_text("orderId", order_id, _MAX_ORDER_ID)
            params["orderId"] = order_id
        elif order_number is not None:
            check_order_number(order_number)
            params["orderNumber"] = order_number
        else:
            raise GatewayError("order_status needs order_number or order_id")
        return self._call(
            "getOrderStatusExtended.do",
            params=params,
            parse=OrderStatusResponse.model_validate,
            log_fields={"orderNumber": order_number, "orderId": order_id},
        )

    def refund(self, request: RefundRequest) -> GatewayResult:
        """Refund (part of) a deposited order: POST to ``refund.do`` (per the dialect).

        ``amount`` 0 means the whole order. ``external_refund_id`` makes the refund
        idempotent at gateways that support it (a repeat returns the first result).
        """
        order_id, amount = request.order_id, request.amount
        external_refund_id = request.external_refund_id
        check_text("orderId", order_id, _MAX_ORDER_ID)
        check_amount(amount, minimum=0)
        check_text("externalRefundId", external_refund_id, _MAX_REFUND_ID)
        params = {
            **self._credentials(),
            "orderId": order_id,
            "amount": amount,
            "externalRefundId": external_refund_id,
        }
        return self._call(
            "refund.do",
            params=params,
            parse=ActionResponse.model_validate,
            log_fields={"orderId": order_id, "amount": amount},
        )

    def reverse(self, request: ReverseRequest) -> GatewayResult:
        """Cancel a deposited or held order: POST to ``reverse.do`` (per the dialect)."""
        order_id = request.order_id
        check_text("orderId", order_id, _MAX_ORDER_ID)
        return self._call(
            "reverse.do",
            params={**self._credentials(), "orderId": order_id},
            parse=ActionResponse.model_validate,
            log_fields={"orderId": order_id},
        )

    def deposit(self, request: DepositRequest) -> GatewayResult:
        """Capture a held (two-phase) order: POST to ``deposit.do`` (per the dialect);
        ``amount`` 0 = all."""
        order_id = request.order_id
        check_text("orderId", order_id, _MAX_ORDER_ID)
        check_amount(request.amount, minimum=0)
        params = {**self._credentials(), "orderId": order_id, "amount": request.amount}
        return self._call(
            "deposit.do",
            params=params,
            parse=ActionResponse.model_validate,
            log_fields={"orderId": order_id, "amount": request.amount},
        )

    def decline(self, request: DeclineRequest) -> GatewayResult:
        """Cancel an unpaid order: POST to ``decline.do`` (per the dialect) by ``orderId``
        (first) or ``orderNumber``."""
        form: dict[str, Any] = self._credentials()
        if request.order_id is not None:
            check_text("orderId", request.order_id, _MAX_ORDER_ID)
            form["orderId"] = request.order_id
        elif request.order_number is not None:
            check_order_number(request.order_number)
            form["orderNumber"] = request.order_number
        else:
            raise GatewayError("decline needs order_number or order_id")
        return self._call(
            "decline.do",
            params=form,
            parse=ActionResponse.model_validate,
            log_fields={"orderNumber": request.order_number, "orderId": request.order_id},
        )

    # -- internals ------------------------------------------------------------------------------

    def _credentials(self) -> dict[str, str]:
        if self._config.token is not None:
            return {"token": self._config.token.get_secret_value()}
        return {
            "userName": self._config.username,
            "password": self._config.password.get_secret_value(),
        }

    def _secrets(self, binding_id: str | None, contacts: tuple[str | None, ...] = ()) -> Secrets:
        """Values that must never appear in a detail, a snippet, a request id or a log line:
        the credentials, the bindingId and the customer's contacts (echoed in
        ``merchantOrderParams``)."""
        token = self._config.token
        return Secrets.of(
            secrets=(
                self._config.password.get_secret_value(),
                token.get_secret_value() if token is not None else None,
                *contacts,
            ),
            bindings=(binding_id,),
        )

    def _call(
        self,
        method: str,
        *,
        parse: Callable[[Any], object],
        log_fields: Mapping[str, object],
        params: dict[str, Any],
        binding_id: str | None = None,
        contacts: tuple[str | None, ...] = (),
    ) -> GatewayResult:
        """POST ``params`` to ``method``, encoded the way the dialect's table says."""
        url = self._config.method_url(method)
        secrets = self._secrets(binding_id, contacts)
        started = time.perf_counter()
        result: GatewayResult
        if route(self._config.dialect, method).encoding is Encoding.JSON:
            body: dict[str, Any] = {"json": params}
        else:
            body = {"data": {name: form_value(value) for name, value in params.items()}}
        try:
            response = self._http.post(url, **body)
        except httpx.InvalidURL:
            raise GatewayError(f"cannot build a request URL for {method}") from None
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.UnsupportedProtocol,
        ) as exc:
            result = ConnectionFailed(detail=transport_detail(exc, secrets))
        except httpx.ReadTimeout as exc:
            result = ReadTimedOut(detail=transport_detail(exc, secrets))
        except httpx.RequestError as exc:  # WriteTimeout, Read/WriteError, protocol, decoding
            result = ConnectionLost(detail=transport_detail(exc, secrets))
        else:
            result = to_result(response, parse, secrets)
        elapsed = time.perf_counter() - started
        observe_gateway_call(method, type(result).__name__, elapsed)
        log_result(method, log_fields, result, elapsed * 1000)
        return result


def _additional_parameters(request: ChargeRequest) -> dict[str, str]:
    """recurrentPayment.do's ``additionalParameters``: our client id, and the customer's
    ``email`` / ``phone``, which a merchant with fiscalization set up uses first to send the
    fiscal receipt (see recurrentPayment.txt)."""
    extra: dict[str, str] = {}
    if request.client_id is not None:
        extra["clientId"] = request.client_id
    if request.customer_email:
        extra["email"] = request.customer_email
    if request.customer_phone:
        extra["phone"] = request.customer_phone
    return extra
