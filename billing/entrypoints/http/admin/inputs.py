"""What the admin API accepts as text and numbers before any use case sees them.

It decides the bounds every entry point shares: ids and offsets fit a signed 64-bit column
(``MAX_ID``), no text field carries a NUL byte (PostgreSQL refuses them, and the refusal
would surface as a 500), digits are ASCII. It must never touch the database, and never
accept a value the database or the gateway would refuse later.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query
from pydantic import AfterValidator

#: The largest id or offset a BIGINT column (and SQLite's INTEGER) can hold.
MAX_ID = 2**63 - 1


def no_nul(value: str | None) -> str | None:
    """Refuse text with a NUL byte (the caller names the field)."""
    if value is not None and "\x00" in value:
        raise ValueError("must not contain NUL (0x00) bytes")
    return value


Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000)]
Offset = Annotated[int, Query(ge=0, le=MAX_ID)]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
QueryText = Annotated[str | None, Query(max_length=255), AfterValidator(no_nul)]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", min_length=1, max_length=255),
    AfterValidator(no_nul),
]
