"""Alert rules, one open alert per rule and subject, resolution and acknowledgement (SQLite and PostgreSQL)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import Session, select

from certs.authority import init_authority
from gateway.audit.models import AuditEvent
from gateway.pki import service as pki
from gateway.pki.expiry import on_expiring, warn_expiring
from gateway.seats.models import SeatLease, SeatLeaseState
from gateway.sessions.models import LoginAttempt
from gateway.supervision.alerts import acknowledge, certificate_expiry_alerts, check_alerts, open_alerts
from gateway.supervision.models import Alert, WorkStatus
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import set_work_state
from gateway.vpn.models import LeaseState, TunnelLease
from tests.gateway.supervision.conftest import EVERY_TEAM, add_session

T0 = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
SETTINGS = SupervisionSettings(break_max_minutes=10, ready_idle_minutes=3, failed_logins=3, link_down_seconds=180)


def _rules(db: Session) -> list[tuple[str, str | None]]:
    return sorted((alert.rule, alert.login) for alert in open_alerts(db))


def test_a_long_break_raises_one_alert_until_it_ends(db: Session) -> None:
    agent = add_session(db, "agent1", created_at=T0)
    set_work_state(db, agent, WorkStatus.BREAK, "lunch", source="portal", now=T0)
    assert check_alerts(db, SETTINGS, T0 + timedelta(minutes=9)) == []
    raised = check_alerts(db, SETTINGS, T0 + timedelta(minutes=11))
    assert [(a.rule, a.login) for a in raised] == [("break_too_long", "agent1")]
    assert "lunch break for 11 min" in raised[0].message
    assert check_alerts(db, SETTINGS, T0 + timedelta(minutes=12)) == []  # still open: not raised again
    set_work_state(db, agent, WorkStatus.READY, "", source="portal", now=T0 + timedelta(minutes=13))
    check_alerts(db, SETTINGS, T0 + timedelta(minutes=13))
    assert _rules(db) == []
    assert db.get(Alert, raised[0].id).resolved_at is not None  # type: ignore[union-attr]
    set_work_state(db, agent, WorkStatus.BREAK, "rest", source="portal", now=T0 + timedelta(minutes=20))
    again = check_alerts(db, SETTINGS, T0 + timedelta(minutes=31))
    assert len(again) == 1 and again[0].id != raised[0].id


def test_acknowledging_is_audited_and_leaves_the_alert_open(db: Session) -> None:
    agent = add_session(db, "agent1", created_at=T0)
    set_work_state(db, agent, WorkStatus.BREAK, "lunch", source="portal", now=T0)
    (alert,) = check_alerts(db, SETTINGS, T0 + timedelta(minutes=11))
    assert alert.id is not None
    acknowledge(db, alert.id, scope=EVERY_TEAM, supervisor="sup1", source="192.0.2.1", now=T0 + timedelta(minutes=12))
    acknowledge(db, alert.id, scope=EVERY_TEAM, supervisor="sup2", source="192.0.2.2", now=T0 + timedelta(minutes=13))
    assert (alert.acknowledged_by, alert.open_key) == ("sup1", "break_too_long:" + agent.id)
    audit = db.exec(select(AuditEvent).where(AuditEvent.action == "supervision.alert.acknowledge")).all()
    assert [(row.actor, row.target) for row in audit] == [("sup1", agent.id)]


def test_vpn_down_failed_logins_and_idle_while_ready_are_raised(db: Session) -> None:
    now = T0 + timedelta(minutes=30)
    tunnel_down = add_session(db, "agent1", created_at=T0)
    idle = add_session(db, "agent2", created_at=T0)
    db.add(
        TunnelLease(
            session_id=tunnel_down.id,
            person_id=tunnel_down.person_id,
            login="agent1",
            public_key="k1",
            ipv4="10.99.0.2",
            ipv6="fd00::2",
            state=LeaseState.DESIRED,
            created_at=T0,
            latest_handshake_at=now - timedelta(minutes=4),
        )
    )
    set_work_state(db, idle, WorkStatus.READY, "", source="portal", now=T0)
    for minute in range(3):
        db.add(LoginAttempt(login="mallory", source_ip="203.0.113.9", at=now - timedelta(minutes=minute), reason="bad"))
    db.add(LoginAttempt(login="typo", source_ip="203.0.113.9", at=now, reason="bad"))
    db.flush()

    db.add(
        SeatLease(
            id="lease-idle",
            session_id=idle.id,
            person_id=idle.person_id,
            login="agent2",
            app_id="crm",
            backend="x11",
            node="n1",
            seat_id="seat-2",
            state=SeatLeaseState.CONNECTED,
            idle_timeout_seconds=900,
            max_session_seconds=36000,
            started_at=T0,
            last_activity_at=now - timedelta(seconds=240),
        )
    )
    db.flush()
    check_alerts(db, SETTINGS, now)
    assert _rules(db) == [("failed_logins", "mallory"), ("idle_while_ready", "agent2"), ("vpn_down", "agent1")]


def test_certificate_expiry_warnings_become_alerts(db: Session, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    authority = init_authority(tmp_path / "ca", "alert-test", "Corp Example", now)
    pki.issue_agent_certificate(
        db,
        authority,
        upn="agent1@corp.example",
        account="agent1",
        wireguard_key="xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=",
        person_id=None,
        actor=pki.Actor("test"),
        now=now,
        lifetime=timedelta(days=3),
        urls=pki.publication_urls("http://x"),
    )
    on_expiring(certificate_expiry_alerts)
    warn_expiring(db, now=now, days=2)
    assert _rules(db) == []
    warn_expiring(db, now=now, days=5)
    warn_expiring(db, now=now, days=5)
    assert _rules(db) == [("cert_expiring", "agent1")]
