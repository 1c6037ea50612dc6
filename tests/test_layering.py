"""The tree is the architecture: packages depend only downward, one module quotes shell text,
only cli/ prints, and the GPU-box payload never imports the laptop side."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Lowest first. A module may import its own package and anything below it.
LAYERS = ["", "hosts", "ssh", "profiles", "provision", "jobs", "batch", "cluster", "cli"]


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[str, int]]:
    """(dotted module, line) for every absolute import in PATH, the lazy ones in functions too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            # `from remote_sep import profiles` imports the package profiles
            if node.module == "remote_sep":
                found += [(f"remote_sep.{alias.name}", node.lineno) for alias in node.names]
    return found


def _layer(module: str) -> str:
    """The package of a remote_sep module ('' for the top-level ones: errors, atomic)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else ""


def _own_layer(path: Path) -> str:
    rel = path.relative_to(ROOT / "remote_sep").parts
    return rel[0] if len(rel) > 1 else ""


def test_every_subpackage_has_a_layer():
    packages = {p.name for p in (ROOT / "remote_sep").iterdir()
                if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == set(LAYERS) - {""}


def test_packages_import_only_downward():
    upward = []
    for path in _modules("remote_sep"):
        mine = LAYERS.index(_own_layer(path))
        for module, line in _imports(path):
            if module.startswith("remote_sep.") and LAYERS.index(_layer(module)) > mine:
                upward.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert upward == []


def test_the_payload_never_imports_the_laptop_side():
    offenders = [f"{path.relative_to(ROOT)}:{line}" for path in _modules("remote_payload")
                 for module, line in _imports(path) if module.split(".")[0] == "remote_sep"]
    assert offenders == []


def test_only_the_shell_module_quotes():
    quoting = {str(path.relative_to(ROOT)) for path in _modules("remote_sep")
               if any(module == "shlex" for module, _ in _imports(path))}
    assert quoting == {"remote_sep/hosts/shell.py"}


def test_only_cli_prints():
    offenders = []
    for path in _modules("remote_sep"):
        if _own_layer(path) == "cli":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in {"print", "input"}):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {node.func.id}")
        offenders += [f"{path.relative_to(ROOT)}:{line} imports {module}"
                      for module, line in _imports(path)
                      if module.split(".")[0] in {"rich", "typer", "click"}]
    assert offenders == []
