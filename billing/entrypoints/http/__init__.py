"""The HTTP entry points: the admin API (``/api``), the operators' console (``/console``)
and the gateway's callbacks (``/callbacks``), put together by :mod:`.asgi`.

Nothing here opens a socket or connects at import time, and nothing here decides about
money: handlers parse, check who is asking, call one use case and answer.
"""
