"""Who is asking the admin API: the bearer token checked, then the role checked per route.

``Reader``, ``Lifecycle`` and ``Money`` are FastAPI dependencies a route declares to say
who may call it: no or unknown token → 401, a role not allowed there → 403. Tokens are
parsed and compared by :mod:`billing.auth_tokens` (constant time, never logged); this
module only wires that into FastAPI. It never decides anything else.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from billing.auth_tokens import (
    LIFECYCLE_ROLES,
    MONEY_ROLES,
    READ_ROLES,
    Principal,
    Role,
    TokenConfig,
)

_bearer = HTTPBearer(auto_error=False, description="A token from BILLING_ADMIN_TOKENS")


def _principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    tokens: TokenConfig = request.app.state.tokens
    who = tokens.authenticate(credentials.credentials if credentials else None)
    if who is None:
        raise HTTPException(
            401, "a valid bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    return who


def _allow(roles: frozenset[Role]) -> Callable[[Principal], Principal]:
    def check(who: Annotated[Principal, Depends(_principal)]) -> Principal:
        if who.role not in roles:
            allowed = ", ".join(sorted(r.value for r in roles))
            raise HTTPException(403, f"role {who.role} may not do this (needs {allowed})")
        return who

    return check


#: Any valid token; operator or backend; operator only.
Reader = Annotated[Principal, Depends(_allow(READ_ROLES))]
Lifecycle = Annotated[Principal, Depends(_allow(LIFECYCLE_ROLES))]
Money = Annotated[Principal, Depends(_allow(MONEY_ROLES))]
