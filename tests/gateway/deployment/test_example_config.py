"""deploy/sohogw.example.toml: every key is a real setting (settings forbid unknown keys), and the placeholders it
ships with are exactly what `sohogw config check` calls UNSAFE, so a copied example cannot go live unchanged."""

import os
from pathlib import Path

import pytest

from gateway.deployment.findings import Verdict
from gateway.deployment.safety import safety_findings
from gateway.settings import CONFIG_ENV, load_settings

EXAMPLE = Path(__file__).resolve().parents[3] / "deploy" / "sohogw.example.toml"


def test_the_example_loads_and_its_placeholders_are_unsafe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for key in [k for k in os.environ if k.startswith("SOHOGW_")]:
        monkeypatch.delenv(key)
    installed = tmp_path / "sohogw.toml"  # installed as the example's own first line says: it holds secrets
    installed.write_text(EXAMPLE.read_text())
    installed.chmod(0o600)
    monkeypatch.setenv(CONFIG_ENV, str(installed))
    settings = load_settings()
    assert settings.directory_settings.kind == "active_directory" and settings.vpn.enabled
    assert settings.db_url.startswith("postgresql+psycopg://")
    secrets = next(f for f in safety_findings(settings) if f.check == "secrets")
    assert secrets.verdict is Verdict.UNSAFE
    placeholders = ["database_url's password", "directory.bind_password", "portal.proxy_secret",
                    "seats.guacamole_secret", "supervision.platform_secret", "supervision.mail.password",
                    "sms.bearer_token"]  # fmt: skip
    for key in placeholders:
        assert f"{key} is a placeholder" in secrets.message
