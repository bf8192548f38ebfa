"""The gateway's callback notifications: checksum verification and the ASGI endpoint.

A verified callback is only a hint: it enqueues a re-check of the order status; it never
marks anything paid or failed by itself.
"""

from billing.callbacks.app import (
    CallbackConfig,
    RepeatFilter,
    callback_config,
    create_callback_app,
)
from billing.gateway.callback_signature import (
    build_signed_string,
    sign_hmac,
    sign_rsa,
    verify_hmac,
    verify_rsa,
)

__all__ = [
    "CallbackConfig",
    "RepeatFilter",
    "build_signed_string",
    "callback_config",
    "create_callback_app",
    "sign_hmac",
    "sign_rsa",
    "verify_hmac",
    "verify_rsa",
]
