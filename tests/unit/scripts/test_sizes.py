"""scripts/sizes.py --check: it fails on a long function or a long module, migrations aside.

These tests only run the script's main() on small trees written to tmp_path; they must never
depend on the sizes of the real billing/ tree (scripts/test.sh checks that).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "sizes.py"


@pytest.fixture(scope="module")
def sizes() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sizes_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while it loads
    spec.loader.exec_module(module)
    return module


def _function(name: str, body_lines: int) -> str:
    return f"def {name}() -> None:\n" + "    pass\n" * (body_lines - 1)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _check(sizes: ModuleType, root: Path) -> int:
    result: int = sizes.main([str(root), "--check", "--limit", "10", "--module-limit", "30"])
    return result


def test_a_tree_within_limits_passes(sizes: ModuleType, tmp_path: Path) -> None:
    root = _tree(tmp_path, {"a.py": _function("short", 10)})
    assert _check(sizes, root) == 0


def test_a_long_function_fails(sizes: ModuleType, tmp_path: Path) -> None:
    root = _tree(tmp_path, {"a.py": _function("long", 11)})
    assert _check(sizes, root) == 1


def test_a_long_module_fails(sizes: ModuleType, tmp_path: Path) -> None:
    root = _tree(tmp_path, {"a.py": "".join(_function(f"f{i}", 5) for i in range(7))})
    assert _check(sizes, root) == 1


def test_without_check_it_only_reports(sizes: ModuleType, tmp_path: Path) -> None:
    root = _tree(tmp_path, {"a.py": _function("long", 11)})
    assert sizes.main([str(root), "--limit", "10"]) == 0


def test_migrations_are_exempt(sizes: ModuleType, tmp_path: Path) -> None:
    long_module = "".join(_function(f"f{i}", 20) for i in range(3))
    root = _tree(tmp_path, {"storage/migrations/versions/0001_x.py": long_module})
    assert _check(sizes, root) == 0
