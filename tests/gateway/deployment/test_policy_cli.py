"""`sohogw policy import|export|explain` as an admin runs them: a refused document changes nothing and leaves its
audit row; an accepted one is in force and explained; bootstrap refuses once a policy exists, audited."""

from pathlib import Path

from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.db import make_engine
from policy.document import DEFAULT_POLICY_FILE
from tests.gateway.deployment.conftest import run_sohogw


def _actions(url: str) -> list[tuple[str, str]]:
    engine = make_engine(url)
    with Session(engine) as db:
        rows = [(e.action, e.outcome) for e in db.exec(select(AuditEvent).order_by(col(AuditEvent.seq)))]
    engine.dispose()
    return rows


def test_import_export_explain_and_refusals(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'gw.db'}"
    env = {"SOHOGW_DATA_DIR": str(tmp_path), "SOHOGW_DATABASE_URL": url}
    broken = tmp_path / "broken.yaml"
    broken.write_text("version: 1\ngroups:\n  Night-Shift:\n    roles: [astronaut]\n")
    refused = run_sohogw("policy", "import", str(broken), env=env)
    assert refused.returncode == 1 and "policy refused, the running policy is unchanged" in refused.stderr
    assert "astronaut" in refused.stderr
    assert run_sohogw("policy", "export", env=env).stdout == DEFAULT_POLICY_FILE.read_text()

    night = tmp_path / "night.yaml"
    night.write_text(DEFAULT_POLICY_FILE.read_text().replace("SOHO-Agents:", "Night-Shift:"))
    accepted = run_sohogw("policy", "import", str(night), "--comment", "night shift", env=env)
    assert accepted.returncode == 0 and "policy version 1 is in force" in accepted.stdout
    explained = run_sohogw("policy", "explain", "--groups", "Night-Shift", env=env)
    assert "roles: agent" in explained.stdout and "Night-Shift" in explained.stdout
    assert "roles: none" in run_sohogw("policy", "explain", "--groups", "SOHO-Agents", env=env).stdout

    again = run_sohogw("bootstrap", "--group", "agent=Night-Shift", env=env)
    assert again.returncode == 1 and "already in force" in again.stderr
    assert _actions(url) == [
        ("policy.import", "refused"),
        ("policy.export", "success"),
        ("policy.import", "success"),
        ("policy.explain", "success"),
        ("policy.explain", "success"),
        ("policy.bootstrap", "refused"),
    ]
