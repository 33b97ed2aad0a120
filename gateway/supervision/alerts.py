"""Raise, resolve and acknowledge alerts: one open alert per rule and subject.

An alert opens when its condition first holds and resolves (``open_key`` cleared) when it no longer does; while it
is open the same condition raises nothing new. Acknowledging is a supervisor's act, audited, and does not resolve.
New alerts are stored with an empty ``delivery``: the alert job sends them (``delivery.py``) after the commit.
"""

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import Clock, utcnow
from gateway.errors import NotFound
from gateway.pki.models import IssuedCertificate
from gateway.supervision.models import Alert
from gateway.supervision.rules import (
    CERT_EXPIRING,
    POLLED_RULES,
    RECORDING_STORAGE,
    Condition,
    failed_login_conditions,
    seat_conditions,
)
from gateway.supervision.scope import visible_logins
from gateway.supervision.settings import SupervisionSettings
from gateway.supervision.state import close_ended_stretches
from gateway.supervision.view import seat_view
from policy import SupervisedTeams


def open_alerts(db: Session, rules: Iterable[str] | None = None) -> list[Alert]:
    query = select(Alert).where(col(Alert.open_key).is_not(None))
    if rules is not None:
        query = query.where(col(Alert.rule).in_(list(rules)))
    return list(db.exec(query.order_by(col(Alert.raised_at).desc())).all())


def recent_alerts(db: Session, scope: SupervisedTeams, limit: int = 100) -> list[Alert]:
    """The newest alerts about agents in the scope; an alert about no agent (a certificate nobody holds) only for
    supervisors of every team."""
    query = select(Alert).order_by(col(Alert.id).desc())
    if scope.every_team:
        return list(db.exec(query.limit(limit)).all())
    seen = visible_logins(db, scope, db.exec(select(Alert.login).distinct()).all())
    return list(db.exec(query.where(col(Alert.login).in_(seen)).limit(limit)).all())


def apply_conditions(db: Session, rules: Sequence[str], conditions: list[Condition], now: datetime) -> list[Alert]:
    """Open an alert for each new condition of ``rules`` and resolve those whose condition is gone."""
    current = {alert.open_key: alert for alert in open_alerts(db, rules)}
    wanted = {condition.key: condition for condition in conditions}
    for key, alert in current.items():
        if key not in wanted:
            alert.open_key, alert.resolved_at = None, now
            db.add(alert)
    raised = []
    for key, condition in wanted.items():
        if key in current:
            continue
        alert = Alert(
            rule=condition.rule,
            subject=condition.subject,
            login=condition.login,
            open_key=key,
            message=condition.message[:500],
            raised_at=now,
        )
        db.add(alert)
        raised.append(alert)
    db.flush()
    return raised


def check_alerts(db: Session, settings: SupervisionSettings, now: datetime) -> list[Alert]:
    """Run every polled rule once; returns the alerts raised now."""
    close_ended_stretches(db, now)
    conditions = seat_conditions(seat_view(db, now, settings), now, settings)
    conditions += failed_login_conditions(db, now, settings)
    return apply_conditions(db, POLLED_RULES, conditions, now)


def acknowledge(
    db: Session, alert_id: int, *, scope: SupervisedTeams, supervisor: str, source: str, now: datetime
) -> Alert:
    """Mark the alert seen; an alert about an agent out of the scope is answered as if there were none."""
    alert = db.get(Alert, alert_id)
    in_scope = alert is not None and (scope.every_team or bool(visible_logins(db, scope, [alert.login])))
    if alert is None or not in_scope:
        outcome = "no_such_alert" if alert is None else "out_of_scope"
        record(db, actor=supervisor, source=source, action="supervision.alert.acknowledge", outcome=outcome,
               target=str(alert_id), clock=lambda: now)  # fmt: skip
        raise NotFound(f"there is no alert {alert_id}")
    if alert.acknowledged_at is None:
        alert.acknowledged_at, alert.acknowledged_by = now, supervisor
        db.add(alert)
        db.flush()
        record(
            db,
            actor=supervisor,
            source=source,
            action="supervision.alert.acknowledge",
            outcome="acknowledged",
            target=alert.subject,
            detail={"alert": alert.id, "rule": alert.rule},
        )
    return alert


class CertificateExpiryAlerts:
    """The PKI expiry hook (``gateway.pki.expiry.on_expiring``): one alert per expiring certificate.

    A single instance is registered; ``clock`` is set by ``supervision_workers`` so tests can move time.
    """

    clock: Clock = staticmethod(utcnow)

    def __call__(self, db: Session, expiring: list[IssuedCertificate]) -> None:
        conditions = [
            Condition(
                CERT_EXPIRING,
                row.serial,
                (row.upn or "").split("@")[0] or None,
                f"certificate {row.serial} of {row.upn or row.subject} expires at {row.not_after:%Y-%m-%d %H:%M} UTC",
            )
            for row in expiring
        ]
        apply_conditions(db, (CERT_EXPIRING,), conditions, self.clock())


certificate_expiry_alerts = CertificateExpiryAlerts()


class RecordingStorageAlarm:
    """The seats' `StorageAlarm`: one open ``recording_storage`` alert per node while it refuses new recordings for
    lack of room, resolved when a purge has made room again."""

    def refused(self, db: Session, node: str, refusal: str, now: datetime) -> None:
        key = f"{RECORDING_STORAGE}:{node}"
        if db.exec(select(Alert).where(Alert.open_key == key)).first() is None:
            message = f"Screen recording refused on {node}: {refusal}"
            db.add(Alert(rule=RECORDING_STORAGE, subject=node, open_key=key, message=message[:500], raised_at=now))
            db.flush()

    def room_again(self, db: Session, node: str, now: datetime) -> None:
        alert = db.exec(select(Alert).where(Alert.open_key == f"{RECORDING_STORAGE}:{node}")).first()
        if alert is not None:
            alert.open_key, alert.resolved_at = None, now
            db.add(alert)
            db.flush()
