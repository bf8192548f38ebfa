"""A signed callback cannot be re-split into other parameters with the same checksum."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from billing.gateway.callback_signature import (
    build_signed_string,
    sign_hmac,
    signable_problem,
    verify_hmac,
)
from tests.unit.entrypoints.test_callback_app import SECRET, World, callback_world, send


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from callback_world(tmp_path)


def _resplit(params: dict[str, str]) -> dict[str, str]:
    """The same signed string, cut at other ';': mdOrder swallows operation, orderNumber
    swallows status."""
    return {
        "callbackCreationDate": params["callbackCreationDate"],
        "mdOrder": f"{params['mdOrder']};operation;{params['operation']}",
        "orderNumber": f"{params['orderNumber']};status;{params['status']}",
    }


def test_a_resplit_callback_is_refused_as_malformed_and_never_acted_on(world: World) -> None:
    genuine = world.params()
    forged = _resplit(genuine)
    assert build_signed_string(genuine) == "".join(f"{k};{v};" for k, v in sorted(genuine.items()))
    checksum = sign_hmac(genuine, SECRET)
    response = send(world.app(), params=forged | {"checksum": checksum})
    assert response.status_code == 400
    assert world.dispatcher.reconciles == []
    assert world.events("callback_unknown_order") == []


def test_the_genuine_callback_still_passes(world: World) -> None:
    assert send(world.app(), params=world.signed()).status_code == 200
    assert world.dispatcher.reconciles == [world.attempt.id]


@pytest.mark.parametrize(
    "query",
    [
        "orderNumber=1&orderNumber=1",  # a name given twice
        "orderNumber=1&status=1;operation;deposited",  # a value with the separator
        "orderNumber=1&a%3Bb=1",  # a name with the separator
        "orderNumber=1%0A&status=1",  # a control character
    ],
)
def test_ambiguous_parameters_get_400(world: World, query: str) -> None:
    response = send(world.app(), path=f"/callbacks/gateway?{query}")
    assert response.status_code == 400
    assert world.dispatcher.reconciles == []


def test_ambiguous_parameters_never_verify_even_when_signed_as_a_string() -> None:
    params = {"mdOrder": "m;operation;deposited", "orderNumber": "1"}
    genuine_checksum = sign_hmac(
        {"mdOrder": "m", "operation": "deposited", "orderNumber": "1"}, "k"
    )
    assert not verify_hmac(params, genuine_checksum, "k")
    assert signable_problem(params.items()) is not None
    assert signable_problem([("a", "1"), ("a", "2")]) is not None
    assert signable_problem([("a", "1"), ("b", "2 3")]) is None
