"""guacamole-lite's Node packages, installed from the lock file committed in deploy/guacamole-lite."""

import json
import subprocess
from pathlib import Path

SERVER_DIR = Path(__file__).resolve().parents[2] / "deploy" / "guacamole-lite"


def _version(package_json: Path) -> str | None:
    return json.loads(package_json.read_text())["version"] if package_json.is_file() else None


def locked_version() -> str:
    return str(
        json.loads((SERVER_DIR / "package-lock.json").read_text())["packages"]["node_modules/guacamole-lite"]["version"]
    )


def installed_modules() -> Path:
    """The node_modules holding the locked guacamole-lite; `npm ci` only when they do not (tests/run.sh runs it
    before pytest, so a run installs once)."""
    modules = SERVER_DIR / "node_modules"
    if _version(modules / "guacamole-lite" / "package.json") != locked_version():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR, check=True, capture_output=True)
    return modules
