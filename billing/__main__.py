"""``python -m billing``: the same as the ``billing`` command."""

from billing.entrypoints.cli.main import main

if __name__ == "__main__":
    main()
