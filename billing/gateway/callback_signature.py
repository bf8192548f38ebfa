"""Checksums of the gateway's callback notifications: pure functions, no I/O.

The signed string: drop ``checksum`` and ``sign_alias``, sort the remaining parameters by
name, join as ``name1;value1;name2;value2;`` (trailing ``;``). Values are used exactly as
received (URL-decoded once), so ``callbackCreationDate`` keeps its spaces.

The string must not be re-splittable into other parameters: a name given twice, or a name
or value containing the separator ``;`` (or a control character), is refused by
:func:`signable_problem` before any checksum is computed, and :func:`build_signed_string`
refuses it too (so such parameters never verify).

* Symmetric: HMAC-SHA256 with the shared secret, upper-case hex. A received checksum is
  compared case-insensitively (normalised to upper case first) and always in constant
  time with :func:`hmac.compare_digest`.
* Asymmetric: an RSA signature (PKCS#1 v1.5, SHA-512), hex-encoded, verified with the
  gateway's public key.
"""

from __future__ import annotations

import hashlib
import hmac
import string
from collections.abc import Iterable, Mapping

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from billing.errors import ConfigurationError

#: Parameters that are never part of the signed string.
UNSIGNED_PARAMS = frozenset({"checksum", "sign_alias"})
#: What joins names and values in the signed string.
SEPARATOR = ";"
_HEX = frozenset(string.hexdigits)
_MIN_RSA_BITS = 2048


def signable_problem(pairs: Iterable[tuple[str, str]]) -> str | None:
    """Why these parameters cannot be signed unambiguously, or None (pure).

    The messages never echo a received name or value.
    """
    names: set[str] = set()
    for position, (name, value) in enumerate(pairs, start=1):
        if name in names:
            return f"parameter {position} repeats the name of an earlier one"
        names.add(name)
        if SEPARATOR in name or _has_control(name):
            return f"the name of parameter {position} contains ';' or a control character"
        if SEPARATOR in value or _has_control(value):
            return f"the value of parameter {position} contains ';' or a control character"
    return None


def _has_control(text: str) -> bool:
    return any(ord(char) < 0x20 or ord(char) == 0x7F for char in text)


def build_signed_string(params: Mapping[str, str]) -> str:
    """``name1;value1;name2;value2;`` over every parameter but the checksum itself.

    Raises ValueError when the parameters could be re-split into others.
    """
    if signable_problem(params.items()) is not None:
        raise ValueError("parameters cannot be signed unambiguously")
    names = sorted(name for name in params if name not in UNSIGNED_PARAMS)
    return "".join(f"{name};{params[name]};" for name in names)


def is_hex(text: str) -> bool:
    """A non-empty, even-length string of hexadecimal digits (either case)."""
    return bool(text) and len(text) % 2 == 0 and all(char in _HEX for char in text)


def sign_hmac(params: Mapping[str, str], secret: str) -> str:
    """The checksum the gateway sends with a symmetric key: upper-case hex HMAC-SHA256."""
    digest = hmac.new(
        secret.encode("utf-8"), build_signed_string(params).encode("utf-8"), hashlib.sha256
    )
    return digest.hexdigest().upper()


def verify_hmac(params: Mapping[str, str], checksum: str, secret: str) -> bool:
    """Whether ``checksum`` is the HMAC of ``params``; constant-time, case-insensitive."""
    if not is_hex(checksum) or signable_problem(params.items()) is not None:
        return False
    expected = sign_hmac(params, secret)
    return hmac.compare_digest(checksum.upper().encode("ascii"), expected.encode("ascii"))


def load_rsa_public_key(pem: str) -> rsa.RSAPublicKey:
    """Parse the gateway's PEM public key; anything else is a ConfigurationError."""
    try:
        key = serialization.load_pem_public_key(pem.encode("utf-8"))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ConfigurationError(
            "BILLING_CALLBACK_PUBLIC_KEY is not a PEM public key "
            "(expected -----BEGIN PUBLIC KEY-----)"
        ) from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigurationError("BILLING_CALLBACK_PUBLIC_KEY must be an RSA public key")
    if key.key_size < _MIN_RSA_BITS:
        raise ConfigurationError(
            f"BILLING_CALLBACK_PUBLIC_KEY is a {key.key_size}-bit RSA key; "
            f"at least {_MIN_RSA_BITS} bits are required"
        )
    return key


def verify_rsa(params: Mapping[str, str], checksum: str, public_key: rsa.RSAPublicKey) -> bool:
    """Whether ``checksum`` is a hex RSA/SHA-512 (PKCS#1 v1.5) signature of ``params``."""
    if not is_hex(checksum) or signable_problem(params.items()) is not None:
        return False
    try:
        public_key.verify(
            bytes.fromhex(checksum),
            build_signed_string(params).encode("utf-8"),
            padding.PKCS1v15(),
            hashes.SHA512(),
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_rsa(params: Mapping[str, str], private_key: rsa.RSAPrivateKey) -> str:
    """The checksum the gateway sends with an asymmetric key (for tests and the sandbox)."""
    signature = private_key.sign(
        build_signed_string(params).encode("utf-8"), padding.PKCS1v15(), hashes.SHA512()
    )
    return signature.hex().upper()
