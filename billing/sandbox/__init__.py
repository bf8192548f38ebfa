"""A local emulator of the RBS acquiring gateway, served over real HTTP.

The binding id picks the "card's" behaviour (see :mod:`billing.sandbox.behaviours`);
:mod:`billing.sandbox.ledger` is the bank's view of the orders; :mod:`billing.sandbox.app`
is the Starlette app and :mod:`billing.sandbox.server` runs it with uvicorn.
"""

from billing.sandbox.app import SandboxConfig, create_app
from billing.sandbox.ledger import Ledger, Order, OrderState
from billing.sandbox.server import SandboxServer, serve

__all__ = [
    "Ledger",
    "Order",
    "OrderState",
    "SandboxConfig",
    "SandboxServer",
    "create_app",
    "serve",
]
