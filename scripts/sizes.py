"""Report module and function sizes in billing/ and workers/ (the "modules small, functions
short" habit): the largest modules by line count and every function longer than the limit.

    python scripts/sizes.py                # report, exit 0
    python scripts/sizes.py --check        # exit 1 if a function or a module is over its limit
    python scripts/sizes.py --limit 80 --module-limit 400 --top 15 billing workers

A function's length is its whole definition, decorators and docstring included (what a reader
scrolls through); a nested function counts inside its parent and on its own. Alembic migrations
(any path under a `migrations` folder) are exempt: they are written once and never refactored.
It reads files as text and runs nothing; scripts/test.sh runs it with --check.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXEMPT_FOLDER = "migrations"


@dataclass(frozen=True)
class Function:
    path: str
    name: str
    line: int
    length: int


def _functions(path: Path, relative: str) -> list[Function]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[Function] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                end = child.end_lineno or child.lineno
                name = f"{prefix}{child.name}"
                found.append(Function(relative, name, child.lineno, end - first + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def exempt(relative: str) -> bool:
    """True for files the limits do not apply to (Alembic migrations)."""
    return EXEMPT_FOLDER in Path(relative).parts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", default=["billing", "workers"])
    parser.add_argument("--limit", type=int, default=80, help="longest function allowed")
    parser.add_argument("--module-limit", type=int, default=400, help="longest module allowed")
    parser.add_argument("--top", type=int, default=15, help="how many modules to list")
    parser.add_argument("--check", action="store_true", help="exit 1 if anything is over")
    args = parser.parse_args(argv)

    modules: list[tuple[int, str]] = []
    functions: list[Function] = []
    for folder in args.folders:
        base = Path(folder) if Path(folder).is_absolute() else ROOT / folder
        for path in sorted(base.rglob("*.py")):
            relative = str(path.relative_to(base.parent))
            if exempt(relative):
                continue
            modules.append((len(path.read_text().splitlines()), relative))
            functions.extend(_functions(path, relative))

    print(f"{len(modules)} modules, {sum(n for n, _ in modules)} lines in {' '.join(args.folders)}")
    print(f"largest {args.top} modules:")
    for lines, relative in sorted(modules, reverse=True)[: args.top]:
        print(f"  {lines:5d}  {relative}")
    big = sorted((m for m in modules if m[0] > args.module_limit), reverse=True)
    print(f"{len(big)} of {len(modules)} modules over {args.module_limit} lines:")
    for lines, relative in big:
        print(f"  {lines:5d}  {relative}")
    over = sorted((f for f in functions if f.length > args.limit), key=lambda f: -f.length)
    print(f"{len(over)} of {len(functions)} functions over {args.limit} lines:")
    for f in over:
        print(f"  {f.length:5d}  {f.path}:{f.line} {f.name}")
    return 1 if args.check and (over or big) else 0


if __name__ == "__main__":
    sys.exit(main())
