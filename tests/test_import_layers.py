"""The import layers of docs/architecture.md hold, and the check that says so can fail.

`lint-imports` (import-linter) reads its contracts from pyproject.toml; tests/run.sh runs it on the tree too. Here it
runs on a throwaway package that breaks a layer (it must fail, naming the import) and on the same package without
the offending import (it must pass: the failure came from the import, not from the configuration).
"""

import subprocess
import sys
import tomllib
from pathlib import Path

import gateway

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *args],
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _layered_package(root: Path, *, domain_imports_app: bool) -> Path:
    """``shop``: an app on top, a domain under it, a base at the bottom; the domain optionally reaching up."""
    package = root / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("VALUE = 1\n")
    (package / "domain.py").write_text("import shop.app\n" if domain_imports_app else "import shop.base\n")
    (package / "app.py").write_text("import shop.domain\nimport shop.base\n")
    config = root / "layers.toml"
    config.write_text(
        '[tool.importlinter]\nroot_packages = ["shop"]\n\n'
        "[[tool.importlinter.contracts]]\n"
        'name = "shop layers"\ntype = "layers"\nlayers = ["shop.app", "shop.domain", "shop.base"]\n'
    )
    return config


def test_an_import_up_a_layer_fails_the_check_and_is_named(tmp_path: Path) -> None:
    config = _layered_package(tmp_path, domain_imports_app=True)
    result = _lint_imports(tmp_path, "--config", str(config))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "shop.domain is not allowed to import shop.app" in result.stdout


def test_the_same_package_without_that_import_passes(tmp_path: Path) -> None:
    config = _layered_package(tmp_path, domain_imports_app=False)
    result = _lint_imports(tmp_path, "--config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_the_gateway_keeps_its_layers() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "gateway: imports only go down the layers KEPT" in result.stdout


def test_every_gateway_module_sits_in_a_layer() -> None:
    """A module no layer names is checked by nothing: a new top-level module or domain joins the list."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [contract["layers"] for contract in config if contract.get("id") == "gateway-layers"]
    named = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    package_dir = Path(gateway.__file__).parent
    split_packages = {"gateway.__init__", "gateway.web.__init__", "gateway.policies.__init__"}
    """Docstring-only package files of packages whose modules sit in different layers."""
    unplaced = []
    for path in sorted(package_dir.rglob("*.py")):
        parts = path.relative_to(package_dir.parent).with_suffix("").parts
        module = ".".join(parts)
        if "migrations" in parts or module in split_packages:
            continue  # Alembic loads its scripts itself; nothing imports them
        if not any(module == name or module.startswith(name + ".") for name in named):
            unplaced.append(module)
    assert unplaced == []
