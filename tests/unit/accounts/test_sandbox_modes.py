"""The sandbox's strict dialect modes and its several merchant logins, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from billing.domain.dialects import Dialect
from billing.gateway.classify import classify_payment, classify_status
from billing.gateway.client import GatewayClient, GatewayConfig
from billing.gateway.port import ChargeRequest, RefundRequest, ReverseRequest
from billing.sandbox import SandboxConfig, SandboxServer

CREDENTIALS = {"userName": "sandbox", "password": "sandbox"}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[Dialect, SandboxServer]]:
    with (
        SandboxServer(SandboxConfig(dialect=Dialect.RBS)) as rbs,
        SandboxServer(SandboxConfig(dialect=Dialect.ALL2PAY)) as all2pay,
    ):
        yield {Dialect.RBS: rbs, Dialect.ALL2PAY: all2pay}


@pytest.fixture(params=[Dialect.RBS, Dialect.ALL2PAY])
def strict_server(
    request: pytest.FixtureRequest, servers: dict[Dialect, SandboxServer]
) -> SandboxServer:
    return servers[request.param]


def _post(server: SandboxServer, method: str, encoding: str) -> httpx.Response:
    body = {**CREDENTIALS, "orderNumber": "no-such-order"}
    url = f"{server.url}/{method}"
    if encoding == "json":
        return httpx.post(url, json=body)
    return httpx.post(url, data=body)


@pytest.mark.parametrize(
    ("dialect", "method", "refused"),
    [
        (Dialect.RBS, "getOrderStatusExtended.do", "json"),
        (Dialect.RBS, "refund.do", "json"),
        (Dialect.RBS, "reverse.do", "json"),
        (Dialect.RBS, "recurrentPayment.do", "form"),
        (Dialect.ALL2PAY, "getOrderStatusExtended.do", "form"),
        (Dialect.ALL2PAY, "refund.do", "form"),
        (Dialect.ALL2PAY, "reverse.do", "form"),
        (Dialect.ALL2PAY, "recurrentPayment.do", "form"),
    ],
)
def test_strict_mode_refuses_the_wrong_encoding_with_415(
    servers: dict[Dialect, SandboxServer], dialect: Dialect, method: str, refused: str
) -> None:
    answer = _post(servers[dialect], method, refused)
    assert answer.status_code == 415
    assert "Unsupported Media Type" in answer.text


def test_strict_mode_serves_only_its_own_paths(strict_server: SandboxServer) -> None:
    other = "/v1" if strict_server.config.dialect is Dialect.RBS else "/payment/rest"
    answer = httpx.post(f"{strict_server.root_url}{other}/getOrderStatusExtended.do", json={})
    assert answer.status_code == 404


def test_the_client_in_the_same_dialect_is_served_for_every_method(
    strict_server: SandboxServer,
) -> None:
    dialect = strict_server.config.dialect
    assert dialect is not None
    config = GatewayConfig(
        base_url=strict_server.root_url, username="sandbox", password="sandbox", dialect=dialect
    )
    number = f"strict-{dialect.value}"
    before = len(strict_server.ledger.requests())
    with GatewayClient(config) as client:
        paid = classify_payment(client.charge(ChargeRequest(number, "approve-1", 500, "643")))
        assert paid.is_paid
        status = classify_status(client.order_status(order_number=number))
        assert status.is_paid and status.order_id
        assert classify_status(client.order_status(order_id=status.order_id)).is_paid
        refunded = client.refund(RefundRequest(status.order_id, 100, f"rf-{number}"))
        assert refunded.body["errorCode"] == "0"  # type: ignore[union-attr]
        reversed_ = client.reverse(ReverseRequest(status.order_id))
        assert reversed_.body["errorCode"] in ("0", "7")  # type: ignore[union-attr]
    served = [m for _, m in strict_server.ledger.requests()][before:]
    assert len(served) == 5 and not [m for m in served if m.startswith("refused:")]


def test_a_client_in_the_other_dialect_is_refused_as_a_merchant_problem() -> None:
    with SandboxServer(SandboxConfig(dialect=Dialect.ALL2PAY)) as server:
        config = GatewayConfig(
            base_url=f"{server.root_url}/v1", username="sandbox", password="sandbox"
        )  # classic RBS encoding sent to a JSON-only router
        with GatewayClient(config) as client:
            outcome = classify_status(client.order_status(order_number="x-1"))
    assert outcome.category.value == "merchant_config"
    assert outcome.http_status == 415


@pytest.mark.parametrize(
    ("params", "let_in"),
    [
        ({"userName": "sandbox", "password": "sandbox"}, True),
        ({"userName": "eu-login", "password": "eu-pass"}, True),
        ({"userName": "eu-login", "password": "sandbox"}, False),
        ({"userName": "eu-login", "password": "wrong"}, False),
        ({"token": "kz-token"}, True),
        ({"token": "wrong-token"}, False),
    ],
)
def test_several_merchant_logins_are_let_in_and_others_get_access_denied(
    params: dict[str, str], let_in: bool
) -> None:
    config = SandboxConfig(logins=(("eu-login", "eu-pass"),), tokens=("kz-token",))
    with SandboxServer(config) as server:
        answer = httpx.post(
            f"{server.url}/getOrderStatusExtended.do", data={**params, "orderNumber": "none"}
        ).json()
    if let_in:
        assert answer["errorCode"] == "6"  # let in: the order does not exist
    else:
        assert (answer["errorCode"], answer["errorMessage"]) == ("5", "Access denied")
