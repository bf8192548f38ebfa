"""The ``billing`` command line (click): :mod:`.main` is the group and the error handling,
one module per group of commands.

Commands parse arguments, call one use case and render the answer; they never decide
anything about money themselves.
"""
