"""Checksums of gateway callbacks: what a merchant's key must accept, and what it must not."""

from __future__ import annotations

import hmac

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from billing.errors import ConfigurationError
from billing.gateway.callback_signature import (
    build_signed_string,
    is_hex,
    load_rsa_public_key,
    sign_hmac,
    sign_rsa,
    verify_hmac,
    verify_rsa,
)

SECRET = "shared-secret-1234"
PARAMS = {
    "status": "1",
    "orderNumber": "7-1-a1b2c3d4e5",
    "mdOrder": "3ff6962a-7dcc-4283-ab50-a6d7dd3386fe",
    "operation": "deposited",
    "callbackCreationDate": "Mon Dec 01 03:00:05 MSK 2026",
    "amount": "49900",
}
# Computed independently with:
#   printf 'amount;49900;callbackCreationDate;Mon Dec 01 03:00:05 MSK 2026;mdOrder;...;' \
#     | openssl dgst -sha256 -hmac shared-secret-1234
EXPECTED = "E622DBD9A4E9A1A3053FCAA1E10DA4BE0E2F58E2CA474AEFE00B9BB530552BB7"


def test_signed_string_sorts_names_keeps_spaces_and_ends_with_a_semicolon() -> None:
    signed = build_signed_string({**PARAMS, "checksum": "AB", "sign_alias": "key1"})
    assert signed == (
        "amount;49900;callbackCreationDate;Mon Dec 01 03:00:05 MSK 2026;"
        "mdOrder;3ff6962a-7dcc-4283-ab50-a6d7dd3386fe;operation;deposited;"
        "orderNumber;7-1-a1b2c3d4e5;status;1;"
    )


def test_hmac_checksum_matches_an_independent_computation_in_upper_case_hex() -> None:
    assert sign_hmac(PARAMS, SECRET) == EXPECTED
    assert verify_hmac(PARAMS, EXPECTED, SECRET)


def test_hmac_checksum_is_accepted_in_lower_case_too() -> None:
    assert verify_hmac(PARAMS, EXPECTED.lower(), SECRET)


def test_hmac_checksum_rejects_another_secret_a_changed_value_or_non_hex() -> None:
    assert not verify_hmac(PARAMS, EXPECTED, "another-secret")
    assert not verify_hmac({**PARAMS, "operation": "declinedByTimeout"}, EXPECTED, SECRET)
    assert not verify_hmac({**PARAMS, "callbackCreationDate": "Mon Dec 01"}, EXPECTED, SECRET)
    assert not verify_hmac(PARAMS, "", SECRET)
    assert not verify_hmac(PARAMS, "Z" * 64, SECRET)
    assert not verify_hmac(PARAMS, EXPECTED[:-2], SECRET)


def test_hmac_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert verify_hmac(PARAMS, EXPECTED.lower(), SECRET)
    assert not verify_hmac(PARAMS, "00" * 32, SECRET)
    assert calls == [(EXPECTED.encode(), EXPECTED.encode()), (b"00" * 32, EXPECTED.encode())]


def test_is_hex() -> None:
    assert is_hex("00aaFF")
    assert not is_hex("")
    assert not is_hex("abc")  # odd length
    assert not is_hex("0x12")
    assert not is_hex("\uff11\uff12")  # full-width digits are not hex


def _rsa_pair(bits: int = 2048) -> tuple[rsa.RSAPrivateKey, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem.decode()


def test_rsa_signature_verifies_only_with_the_matching_key_and_unchanged_params() -> None:
    key, pem = _rsa_pair()
    other, _ = _rsa_pair()
    public = load_rsa_public_key(pem)
    checksum = sign_rsa(PARAMS, key)
    assert verify_rsa(PARAMS, checksum, public)
    assert verify_rsa(PARAMS, checksum.lower(), public)
    assert not verify_rsa(PARAMS, sign_rsa(PARAMS, other), public)
    assert not verify_rsa({**PARAMS, "status": "0"}, checksum, public)
    assert not verify_rsa(PARAMS, checksum[:-2], public)
    assert not verify_rsa(PARAMS, "not hex", public)


def test_an_unusable_public_key_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="PEM"):
        load_rsa_public_key("not a key")
    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(ConfigurationError, match="RSA"):
        load_rsa_public_key(ec_pem)
    _, weak = _rsa_pair(1024)
    with pytest.raises(ConfigurationError, match="2048"):
        load_rsa_public_key(weak)
