"""The two dialects of the RBS-family gateway API, as data: where each method lives and how
its body is encoded.

* ``rbs``: the classic RBS REST API (Sberbank, Alfa-Bank): ``/payment/rest/<method>.do``,
  form-encoded parameters for every method but ``recurrentPayment.do``, which takes JSON.
* ``all2pay``: the all2pay AntiDDOS router of the seed docs: ``/v1/<method>.do``, a JSON body
  for every method; a form body is refused.

The HTTP client sends by this table and the sandbox's strict mode refuses by it, so one
table says what both sides expect. Pure data and lookups; it must never do I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class Dialect(StrEnum):
    RBS = "rbs"
    ALL2PAY = "all2pay"


class Encoding(StrEnum):
    JSON = "json"
    FORM = "form"


@dataclass(frozen=True)
class Route:
    """Where one method lives and how its body is encoded."""

    base_path: str
    encoding: Encoding

    def path(self, method: str) -> str:
        return f"{self.base_path}/{method}"


_RBS_FORM: Final = Route("/payment/rest", Encoding.FORM)
_RBS_JSON: Final = Route("/payment/rest", Encoding.JSON)
_ALL2PAY: Final = Route("/v1", Encoding.JSON)

#: Every method the product calls, per dialect. A method missing here is never sent.
ROUTES: Final = MappingProxyType(
    {
        Dialect.RBS: MappingProxyType(
            {
                "recurrentPayment.do": _RBS_JSON,
                "getOrderStatusExtended.do": _RBS_FORM,
                "refund.do": _RBS_FORM,
                "reverse.do": _RBS_FORM,
                "deposit.do": _RBS_FORM,
                "decline.do": _RBS_FORM,
            }
        ),
        Dialect.ALL2PAY: MappingProxyType(
            {
                "recurrentPayment.do": _ALL2PAY,
                "getOrderStatusExtended.do": _ALL2PAY,
                "refund.do": _ALL2PAY,
                "reverse.do": _ALL2PAY,
                "deposit.do": _ALL2PAY,
                "decline.do": _ALL2PAY,
            }
        ),
    }
)
METHODS: Final = tuple(ROUTES[Dialect.RBS])


def parse_dialect(value: object) -> Dialect:
    """``rbs`` or ``all2pay`` (any case, surrounding blanks ignored); else ValueError."""
    text = str(value).strip().lower() if isinstance(value, str | Dialect) else ""
    try:
        return Dialect(text)
    except ValueError:
        names = ", ".join(d.value for d in Dialect)
        raise ValueError(f"unknown gateway dialect {value!r}; use one of {names}") from None


def route(dialect: Dialect, method: str) -> Route:
    """The route of ``method`` in ``dialect``; KeyError for a method the table lacks."""
    return ROUTES[dialect][method]


def default_base_path(dialect: Dialect) -> str:
    """The path every method of ``dialect`` lives under (used when the URL has none)."""
    paths = {r.base_path for r in ROUTES[dialect].values()}
    (path,) = paths
    return path
