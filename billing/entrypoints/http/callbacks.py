"""The gateway's callback endpoint: a verified callback is a hint to re-check an order.

``create_callback_app`` builds the Starlette app with two routes:

* ``GET|POST /callbacks/gateway``: the gateway's notification (query string, form body or
  JSON object). It is parsed strictly (400 when malformed), its checksum verified when a
  key is configured (403 when missing or wrong), then handed to
  :class:`billing.services.pipeline.callbacks.CallbackHandler`, which finds the attempt
  and enqueues a reconcile: the worker asks the gateway for the order status. A callback
  never settles anything by itself. Unknown orders get 200 (so the gateway stops
  retrying) and an event; a broker or database failure gets 503 (so the gateway
  retries). The same (order, operation, status) is acted on at most once per
  :data:`REPEAT_WINDOW`: across all processes sharing
  ``BILLING_REDIS_URL`` (:mod:`billing.entrypoints.http.callback_replay`), else in this
  process.
* ``GET /callbacks/health``: liveness.

Nothing here opens a socket or connects at import time.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from billing.entrypoints.http.callback_replay import ReplayFilter, shared_replay_filter
from billing.entrypoints.http.health import health_routes
from billing.entrypoints.http.middleware import middleware as security_middleware
from billing.errors import BrokerError, ConfigurationError, StorageError
from billing.gateway.callback_signature import (
    is_hex,
    load_rsa_public_key,
    signable_problem,
    verify_hmac,
    verify_rsa,
)
from billing.services.pipeline.callbacks import CallbackHandler, Notification, shown
from billing.services.ports import Clock, Dispatcher, system_clock
from billing.settings import Settings
from billing.storage.database import Database

log = logging.getLogger("billing.callbacks")

CALLBACK_PATH = "/callbacks/gateway"
HEALTH_PATH = "/callbacks/health"
MAX_PARAMS = 100
MAX_VALUE_LENGTH = 1024
MAX_NAME_LENGTH = 128
MAX_BODY_BYTES = 256 * 1024
REPEAT_WINDOW = timedelta(seconds=60)
REPEAT_CACHE_SIZE = 10_000


@dataclass(frozen=True)
class CallbackConfig:
    """How callbacks are authenticated. The secret never appears in ``repr``."""

    hmac_secret: str | None = field(default=None, repr=False)
    rsa_public_key_pem: str | None = None
    #: Refuse to start without a key; set False only to accept unsigned callbacks on purpose.
    require_signature: bool = True
    #: Where the replay filter shared by every callback process lives (None: per process).
    redis_url: str | None = field(default=None, repr=False)


class RepeatFilter:
    """An in-memory TTL set: ``claim(key)`` is True once per ``window`` for a key.

    Pure apart from the injected clock; bounded to ``max_entries`` (oldest evicted first).
    Used from the event loop only, so it needs no lock. One per process.
    """

    def __init__(
        self,
        window: timedelta = REPEAT_WINDOW,
        *,
        clock: Clock = system_clock,
        max_entries: int = REPEAT_CACHE_SIZE,
    ) -> None:
        self.window = window
        self.clock = clock
        self.max_entries = max_entries
        self._expiry: OrderedDict[Hashable, datetime] = OrderedDict()

    def __len__(self) -> int:
        return len(self._expiry)

    def claim(self, key: Hashable) -> bool:
        now = self.clock()
        self._purge(now)
        expires = self._expiry.get(key)
        if expires is not None and expires > now:
            return False
        self._expiry[key] = now + self.window
        self._expiry.move_to_end(key)
        while len(self._expiry) > self.max_entries:
            self._expiry.popitem(last=False)
        return True

    def release(self, key: Hashable) -> None:
        """Forget a claim whose work failed, so the gateway's retry is acted on."""
        self._expiry.pop(key, None)

    def _purge(self, now: datetime) -> None:
        while self._expiry:
            key, expires = next(iter(self._expiry.items()))
            if expires > now:
                break
            del self._expiry[key]


class MalformedCallback(Exception):
    """The request cannot be a gateway callback; answered 4xx and never acted on."""

    def __init__(self, reason: str, *, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


def _checksum_hint(checksum: str) -> str:
    """Enough of a checksum to tell two apart in a log, never the whole of it."""
    return f"{shown(checksum[:8])}…({len(checksum)} chars)"


# -- parsing ----------------------------------------------------------------------------------


def _pairs_from_urlencoded(raw: bytes, where: str) -> list[tuple[str, str]]:
    try:
        text = raw.decode("utf-8")
        return parse_qsl(
            text,
            keep_blank_values=True,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_PARAMS,
        )
    except UnicodeDecodeError:
        raise MalformedCallback(f"{where} is not UTF-8") from None
    except ValueError:
        raise MalformedCallback(f"more than {MAX_PARAMS} parameters") from None


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in pairs:
        if name in result:
            raise MalformedCallback(f"parameter {shown(name)} given twice")
        result[name] = value
    return result


def _pairs_from_json(raw: bytes) -> list[tuple[str, str]]:
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except MalformedCallback:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedCallback("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise MalformedCallback("JSON body is not an object")
    pairs: list[tuple[str, str]] = []
    for name, value in data.items():
        if isinstance(value, str):
            pairs.append((name, value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs.append((name, str(value)))
        else:
            raise MalformedCallback(f"parameter {shown(name)} is not a string or an integer")
    return pairs


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise MalformedCallback("body too large", status_code=413)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise MalformedCallback("body too large", status_code=413)
    return bytes(body)


async def read_params(request: Request) -> dict[str, str]:
    """Every parameter of the request (query string plus form or JSON body), checked."""
    pairs = _pairs_from_urlencoded(request.scope.get("query_string", b""), "query string")
    if request.method == "POST":
        body = await _read_body(request)
        if body.strip():
            media = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media == "application/json" or media.endswith("+json"):
                pairs += _pairs_from_json(body)
            elif media in ("", "application/x-www-form-urlencoded"):
                pairs += _pairs_from_urlencoded(body, "body")
            else:
                raise MalformedCallback(f"unsupported content type {shown(media)}", status_code=415)
    if len(pairs) > MAX_PARAMS:
        raise MalformedCallback(f"more than {MAX_PARAMS} parameters")
    for name, value in pairs:
        if not name or len(name) > MAX_NAME_LENGTH:
            raise MalformedCallback(f"parameter name {shown(name)} is empty or too long")
        if len(value) > MAX_VALUE_LENGTH:
            raise MalformedCallback(
                f"parameter {shown(name)} is longer than {MAX_VALUE_LENGTH} characters"
            )
    problem = signable_problem(pairs)  # a name twice, a ';' that could re-split the checksum
    if problem is not None:
        raise MalformedCallback(problem)
    params: dict[str, str] = _reject_duplicates(pairs)
    if not params.get("orderNumber") and not params.get("mdOrder"):
        raise MalformedCallback("neither orderNumber nor mdOrder given")
    checksum = params.get("checksum")
    if checksum is not None and not is_hex(checksum):
        raise MalformedCallback("checksum is not hexadecimal")
    return params


# -- verification -----------------------------------------------------------------------------


class Verifier:
    """Checks a callback's checksum against whichever keys are configured."""

    def __init__(self, config: CallbackConfig) -> None:
        if config.hmac_secret is not None and not config.hmac_secret.strip():
            raise ConfigurationError("BILLING_CALLBACK_SECRET must not be empty")
        self._secret = config.hmac_secret
        pem = config.rsa_public_key_pem
        self._public_key = load_rsa_public_key(pem) if pem is not None and pem.strip() else None
        if not self.enabled and config.require_signature:
            raise ConfigurationError(
                "gateway callbacks: configure BILLING_CALLBACK_SECRET or "
                "BILLING_CALLBACK_PUBLIC_KEY, or explicitly allow unsigned callbacks"
            )

    @property
    def enabled(self) -> bool:
        return self._secret is not None or self._public_key is not None

    def check(self, params: Mapping[str, str]) -> str | None:
        """None when the callback may be acted on, else why it must be refused."""
        if not self.enabled:
            return None
        checksum = params.get("checksum")
        if checksum is None or checksum == "":
            return "unsigned"
        if self._secret is not None and verify_hmac(params, checksum, self._secret):
            return None
        if self._public_key is not None and verify_rsa(params, checksum, self._public_key):
            return None
        return "bad checksum"


# -- the app ----------------------------------------------------------------------------------


def _reply(status_code: int, status: str) -> JSONResponse:
    return JSONResponse({"status": status}, status_code=status_code)


def callback_config(settings: Settings) -> CallbackConfig:
    """The callback checks configured by ``BILLING_CALLBACK_*``."""
    secret = settings.callback_secret
    return CallbackConfig(
        hmac_secret=secret.get_secret_value() if secret else None,
        rsa_public_key_pem=settings.callback_public_key,
        require_signature=not settings.callback_allow_unsigned,
        redis_url=settings.redis_url,
    )


def create_callback_app(
    db: Database,
    dispatcher: Dispatcher,
    config: CallbackConfig,
    *,
    clock: Clock = system_clock,
    repeats: ReplayFilter | None = None,
) -> Starlette:
    """Build the callback app. Raises ConfigurationError for a missing or unusable key."""
    verifier = Verifier(config)
    if not verifier.enabled:
        log.warning("gateway callbacks are NOT authenticated: unsigned callbacks are accepted")
    handler = CallbackHandler(db, dispatcher, clock=clock)
    seen: ReplayFilter = (
        repeats
        if repeats is not None  # (an empty RepeatFilter is falsy)
        else shared_replay_filter(config.redis_url, REPEAT_WINDOW)
        or RepeatFilter(REPEAT_WINDOW, clock=clock)
    )

    async def gateway_callback(request: Request) -> Response:
        if request.method not in ("GET", "POST"):
            return Response(status_code=405, headers={"Allow": "GET, POST"})
        client = request.client.host if request.client else "?"
        try:
            params = await read_params(request)
        except MalformedCallback as exc:
            log.warning(
                "callback rejected from %s: %s (orderNumber %s)",
                client,
                exc.reason,
                shown(request.query_params.get("orderNumber")),
            )
            return _reply(exc.status_code, "malformed")
        note = Notification.from_params(params)
        refusal = verifier.check(params)
        if refusal is not None:
            checksum = params.get("checksum") or ""
            log.warning(
                "callback rejected from %s: %s (orderNumber %s, checksum %s, sign_alias %s)",
                client,
                refusal,
                shown(note.order_number),
                _checksum_hint(checksum) if checksum else "-",
                shown(params.get("sign_alias")),
            )
            return _reply(403, "forbidden")
        if not seen.claim(note.key):
            log.info(
                "callback repeated within %s; already acted on: %s", seen.window, note.describe()
            )
            return _reply(200, "ok")
        try:
            await run_in_threadpool(handler.handle, note)
        except (BrokerError, StorageError) as exc:
            seen.release(note.key)
            log.warning("callback not acted on (%s); answering 503: %s", exc, note.describe())
            return _reply(503, "unavailable")
        except BaseException:
            seen.release(note.key)
            raise
        return _reply(200, "ok")

    async def health(_request: Request) -> Response:
        return _reply(200, "ok")

    return Starlette(
        routes=[
            Route(CALLBACK_PATH, gateway_callback, methods=["GET", "POST"]),
            Route(HEALTH_PATH, health, methods=["GET"]),
            *health_routes(db, config.redis_url),
        ],
        middleware=security_middleware(max_body_bytes=MAX_BODY_BYTES),
    )
