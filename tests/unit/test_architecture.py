"""The package's layering, read from its source (ast): no import cycle, the gateway knows no
engine, configuration imports nothing of Outcrop above it, and one module runs engines.

See docs/architecture.md for the layers these rules keep apart.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "outcrop"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {
        _module_name(path): ast.parse(path.read_text(), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


MODULES = _modules()


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Line numbers of imports under `if TYPE_CHECKING:` (never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imports(module: str, *, runtime_only: bool = False) -> Iterator[str]:
    """The Outcrop modules `module` imports (anywhere in it, functions included)."""
    tree = MODULES[module]
    skipped = _type_checking_only(tree) if runtime_only else set()
    is_package = (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        if node.lineno in skipped:
            continue
        for name in names:
            if name.startswith("outcrop") and name in MODULES and name != module:
                yield name


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph = {m: sorted(set(imports(m, runtime_only=True))) for m in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return found


def test_the_walk_sees_the_imports() -> None:
    # Guards the checks below against passing vacuously.
    assert "outcrop.invocation.engines" in set(imports("outcrop.invocation.pipeline"))
    assert "outcrop.config.security" in set(imports("outcrop.gateway.auth"))
    assert len(MODULES) > 100


def test_no_import_cycle() -> None:
    assert _cycles() == []


def test_the_gateway_imports_no_engine() -> None:
    offending = {
        (module, target)
        for module in MODULES
        if module.startswith("outcrop.gateway")
        for target in imports(module)
        if target.startswith("outcrop.engines")
    }
    assert offending == set()


def test_configuration_imports_nothing_above_it() -> None:
    offending = {
        (module, target)
        for module in MODULES
        if module.startswith("outcrop.config")
        for target in imports(module)
        if not target.startswith("outcrop.config")
    }
    assert offending == set()


def test_the_state_store_imports_only_configuration() -> None:
    offending = {
        (module, target)
        for module in MODULES
        if module.startswith("outcrop.state")
        for target in imports(module)
        if not target.startswith(("outcrop.state", "outcrop.config"))
    }
    assert offending == set()


@pytest.mark.parametrize(
    "layer", ["outcrop.engines", "outcrop.wire", "outcrop.dialects", "outcrop.state"]
)
def test_lower_layers_import_no_service_or_gateway(layer: str) -> None:
    above = ("outcrop.gateway", "outcrop.services", "outcrop.invocation", "outcrop.app")
    offending = {
        (module, target)
        for module in MODULES
        if module.startswith(layer)
        for target in imports(module)
        if target.startswith(above)
    }
    assert offending == set()


def _generate_callers() -> set[str]:
    """Modules outside `outcrop.engines` (whose wrappers delegate) that call `.generate(...)`."""
    callers: set[str] = set()
    for module, tree in MODULES.items():
        if module.startswith("outcrop.engines"):
            continue
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "generate"
            ):
                callers.add(module)
    return callers


def test_engines_are_run_from_one_module() -> None:
    assert _generate_callers() == {"outcrop.invocation.engines"}
