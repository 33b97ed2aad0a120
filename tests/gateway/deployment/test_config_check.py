"""``sohogw config check`` against a real configuration (PostgreSQL, Samba AD over LDAPS, the CA on disk, guacd,
SMTP, WireGuard and nftables as root), and against each way an operator gets it wrong: every broken dependency is
named on its own line with its own message, and ``serve`` refuses to start on an unsafe finding."""

import json
import uuid
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.db import make_engine
from tests.directory import samba
from tests.directory.samba import SambaDC
from tests.gateway.deployment.conftest import run_sohogw
from tests.support.postgres import create_database
from tests.support.server import free_port

pytestmark = pytest.mark.postgres


def _toml(values: dict[str, object], table: str = "") -> str:
    """A small TOML writer: scalars, lists and nested tables (json strings are valid TOML basic strings)."""
    lines, tables = [f"[{table}]"] if table else [], []
    for key, value in values.items():
        if isinstance(value, dict):
            tables.append(_toml(value, f"{table}.{key}" if table else key))
        else:
            lines.append(f"{key} = {json.dumps(str(value) if isinstance(value, Path) else value)}")
    return "\n".join(lines + tables) + "\n"


@pytest.fixture
def good_config(
    tmp_path: Path, data_dir: Path, postgres_admin_url: str, samba_dc: SambaDC, guacd: str, smtp_server: str
) -> dict[str, object]:
    database = create_database(postgres_admin_url, f"sohogw_{uuid.uuid4().hex[:12]}")
    smtp_host, smtp_port = smtp_server.split(":")
    return {
        "data_dir": data_dir,
        "database_url": database,
        "ca": {"passphrase_file": data_dir / "ca-passphrase"},
        "directory": {
            "kind": "active_directory",
            "servers": [samba_dc.ldaps_url],
            "base_dn": samba.BASE_DN,
            "bind_dn": f"{samba.SERVICE_ACCOUNT}@{samba.REALM.lower()}",
            "bind_password": samba.PASSWORD,
            "netbios_domain": samba.NETBIOS,
            "tls": {"ca_file": samba_dc.ca_file, "certificate_names": [samba.CERT_NAME]},
        },
        "vpn": {"enabled": True, "interface": f"cc{uuid.uuid4().hex[:8]}"},
        "seats": {"guacd_address": guacd, "guacamole_secret": "a9f3c0e1b2d4f6a8c0e2"},
        "supervision": {"mail": {"host": smtp_host, "port": int(smtp_port)}},
    }


def _check(tmp_path: Path, config: dict[str, object]) -> tuple[int, dict[str, str]]:
    """Run the check on ``config`` written as TOML; the exit code and each check's line by check name."""
    path = tmp_path / "sohogw.toml"
    path.write_text(_toml(config))
    path.chmod(0o600)  # it holds secrets: a world-readable one is refused before any check
    done = run_sohogw("config", "check", "--file", str(path), env={})
    lines = {line[9:23].strip(): line for line in done.stdout.splitlines() if line[:8].strip() in VERDICTS}
    return done.returncode, lines


VERDICTS = {"ok", "skipped", "FAILED", "UNSAFE"}


def _upgraded(config: dict[str, object]) -> dict[str, object]:
    from gateway.migrate import upgrade

    upgrade(str(config["database_url"]))
    return config


def test_a_good_configuration_passes_every_check(tmp_path: Path, good_config: dict[str, object]) -> None:
    code, lines = _check(tmp_path, _upgraded(good_config))
    assert code == 0, lines
    for check in (
        "ca files",
        "key files",
        "secrets",
        "directory tls",
        "database",
        "directory",
        "ca",
        "wireguard",
        "nftables",
        "guacd",
        "smtp",
    ):
        assert lines[check].startswith("ok "), lines[check]
    assert "bound as svc-sohogw@soho.test" in lines["directory"]
    assert "PostgreSQL answers, schema at" in lines["database"]


def test_a_database_not_yet_upgraded_says_to_run_db_upgrade(tmp_path: Path, good_config: dict[str, object]) -> None:
    code, lines = _check(tmp_path, good_config)
    assert code == 1
    assert lines["database"].startswith("FAILED") and "run `sohogw db upgrade`" in lines["database"]


def test_a_wrong_directory_password_fails_the_directory_check_alone(
    tmp_path: Path, good_config: dict[str, object]
) -> None:
    config = _upgraded(good_config)
    config["directory"]["bind_password"] = "Wrong-Passw0rd-2026"  # type: ignore[index]
    code, lines = _check(tmp_path, config)
    assert code == 1
    assert lines["directory"].startswith("FAILED") and "service account bind refused" in lines["directory"]
    assert all(lines[c].startswith("ok") for c in ("database", "ca", "guacd", "smtp"))


def test_an_unreachable_database_is_named(tmp_path: Path, good_config: dict[str, object]) -> None:
    good_config["database_url"] = f"postgresql+psycopg://sohogw@127.0.0.1:{free_port()}/sohogw"
    code, lines = _check(tmp_path, good_config)
    assert code == 1
    assert lines["database"].startswith("FAILED") and "PostgreSQL does not answer" in lines["database"]
    assert lines["directory"].startswith("ok")


def test_guacd_down_is_named(tmp_path: Path, good_config: dict[str, object]) -> None:
    good_config["seats"]["guacd_address"] = f"127.0.0.1:{free_port()}"  # type: ignore[index]
    code, lines = _check(tmp_path, _upgraded(good_config))
    assert code == 1
    assert lines["guacd"].startswith("FAILED") and "does not answer" in lines["guacd"]


def test_a_port_that_is_not_guacd_is_told_apart(
    tmp_path: Path, good_config: dict[str, object], smtp_server: str
) -> None:
    good_config["seats"]["guacd_address"] = smtp_server  # type: ignore[index]
    _, lines = _check(tmp_path, _upgraded(good_config))
    assert "answers, but not as guacd does" in lines["guacd"]


def test_a_world_readable_ca_key_is_unsafe(tmp_path: Path, good_config: dict[str, object], data_dir: Path) -> None:
    (data_dir / "ca" / "root-ca.key.pem").chmod(0o644)
    code, lines = _check(tmp_path, _upgraded(good_config))
    assert code == 1
    assert lines["ca files"].startswith("UNSAFE") and "root-ca.key.pem has mode 0644" in lines["ca files"]


def test_a_ca_key_the_service_does_not_own_is_unsafe(
    tmp_path: Path, good_config: dict[str, object], data_dir: Path
) -> None:
    # Root reads any mode, so "unreadable" for the service account shows as a file it does not own.
    import os

    os.chown(data_dir / "ca" / "issuing-ca.key.pem", 65534, 65534)
    code, lines = _check(tmp_path, _upgraded(good_config))
    assert code == 1
    assert "issuing-ca.key.pem belongs to uid 65534" in lines["ca files"]


def test_a_wrong_ca_passphrase_fails_the_ca_check(
    tmp_path: Path, good_config: dict[str, object], data_dir: Path
) -> None:
    (data_dir / "ca-passphrase").write_text("not-the-passphrase-at-all")
    code, lines = _check(tmp_path, _upgraded(good_config))
    assert code == 1
    assert lines["ca"].startswith("FAILED") and "passphrase is wrong" in lines["ca"]


def test_a_placeholder_secret_is_unsafe_and_not_shown(tmp_path: Path, good_config: dict[str, object]) -> None:
    good_config["seats"]["guacamole_secret"] = "CHANGE-ME"  # type: ignore[index]
    code, lines = _check(tmp_path, _upgraded(good_config))
    assert code == 1
    assert lines["secrets"].startswith("UNSAFE") and "seats.guacamole_secret is a placeholder" in lines["secrets"]
    assert "CHANGE-ME" not in lines["secrets"]


def test_a_directory_without_certificate_verification_is_unsafe(tmp_path: Path, good_config: dict[str, object]) -> None:
    good_config["directory"]["tls"] = {"insecure_skip_verify": True}  # type: ignore[index]
    _, lines = _check(tmp_path, _upgraded(good_config))
    assert lines["directory tls"].startswith("UNSAFE")


def test_a_directory_in_clear_text_is_refused_by_the_settings(tmp_path: Path, good_config: dict[str, object]) -> None:
    good_config["directory"]["servers"] = ["ldap://127.0.0.1:389"]  # type: ignore[index]
    code, lines = _check(tmp_path, good_config)
    assert code == 1
    assert "would carry passwords in clear text" in lines["settings"]


def test_serve_refuses_to_start_with_a_readable_ca_key_and_audits_it(
    tmp_path: Path, good_config: dict[str, object], data_dir: Path
) -> None:
    config = _upgraded(good_config)
    (data_dir / "ca" / "root-ca.key.pem").chmod(0o640)
    path = tmp_path / "sohogw.toml"
    path.write_text(_toml(config))
    path.chmod(0o600)  # it holds secrets: a world-readable one is refused before any check
    port = free_port()
    done = run_sohogw("serve", "--port", str(port), env={"SOHOGW_CONFIG": str(path)}, timeout=60)
    assert done.returncode == 1
    assert "refusing to start" in done.stderr and "root-ca.key.pem has mode 0640" in done.stderr
    engine = make_engine(str(config["database_url"]))
    with Session(engine) as db:
        last = db.exec(select(AuditEvent).order_by(col(AuditEvent.seq).desc())).first()
    engine.dispose()
    assert last is not None and (last.action, last.outcome) == ("service.start", "refused")
    assert "root-ca.key.pem" in last.detail
