"""The chaos run from the command line: ``python scripts/chaos.py --help``.

The harness lives in :mod:`tests.chaos.run` (test machinery, not in the product wheel);
this script only makes the repository importable and calls it.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.chaos.run import main

if __name__ == "__main__":
    sys.exit(main())
