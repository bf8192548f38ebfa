"""The ways in: the ``billing`` command line, the HTTP apps (admin API, console, gateway
callbacks) and the demo.

Entry points parse input, call one use case and render its answer. They never decide
anything about money (what is paid, what is charged, what may be retried): that lives in
``billing.services`` and ``billing.domain``.
"""
