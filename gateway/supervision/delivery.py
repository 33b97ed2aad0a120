"""Send new alerts by mail and SMS, outside any database transaction, each alert once.

An alert is claimed by turning its empty ``delivery`` into ``sending`` in one UPDATE, so two gateway nodes never
both send it; the outcome of each channel is then written back (``mail:sent sms:failed (…)``). A failed channel
is not retried: the alert stays on the wall and the alerts page for a supervisor to see. Each alert goes to the
recipients of every team (``alert_mail_to``, ``alert_sms_to``) and to those of its agent's teams (``team_alerts``).
"""

from dataclasses import dataclass

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from gateway.db import session_scope
from gateway.errors import GatewayError
from gateway.notify.sms import HttpSms
from gateway.supervision.mail import send_mail
from gateway.supervision.models import Alert
from gateway.supervision.scope import newest_groups
from gateway.supervision.settings import SupervisionSettings
from policy import group_key


@dataclass(frozen=True, slots=True)
class Recipients:
    mail_to: list[str]
    sms_to: list[str]


def recipients_of(db: Session, alert: Alert, settings: SupervisionSettings) -> Recipients:
    """Everyone of ``alert_mail_to`` / ``alert_sms_to``, and for an alert about an agent the recipients of each team
    in ``team_alerts`` the agent's newest session is in: a team's supervisors hear of their own agents only."""
    mail_to, sms_to = list(settings.alert_mail_to), list(settings.alert_sms_to)
    agent_groups = {group_key(group) for group in newest_groups(db, [alert.login]).get(alert.login or "", [])}
    for team, recipients in settings.team_alerts.items():
        if group_key(team) in agent_groups:
            mail_to += [address for address in recipients.mail_to if address not in mail_to]
            sms_to += [number for number in recipients.sms_to if number not in sms_to]
    return Recipients(mail_to, sms_to)


def _claim_pending(engine: Engine, settings: SupervisionSettings) -> list[tuple[Alert, Recipients]]:
    with session_scope(engine) as db:
        pending = list(db.exec(select(Alert).where(Alert.delivery == "")).all())
        claimed = []
        for alert in pending:
            result = db.execute(
                update(Alert).where(col(Alert.id) == alert.id, col(Alert.delivery) == "").values(delivery="sending")
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append((alert, recipients_of(db, alert, settings)))
        return claimed


def _send(alert: Alert, recipients: Recipients, settings: SupervisionSettings) -> str:
    outcomes = []
    if recipients.mail_to:
        try:
            send_mail(settings.mail, recipients.mail_to, f"[SOHO Gateway] {alert.rule}", alert.message)
            outcomes.append("mail:sent")
        except GatewayError as error:
            outcomes.append(f"mail:failed ({error.message})")
    sms = HttpSms(settings.sms)
    for number in recipients.sms_to:
        try:
            sms.send(number, f"SOHO Gateway alert: {alert.message}")
            outcomes.append("sms:sent")
        except GatewayError as error:
            outcomes.append(f"sms:failed ({error.message})")
    return " ".join(outcomes) or "no recipients configured"


def deliver_pending(engine: Engine, settings: SupervisionSettings) -> int:
    """Send every alert nobody sent yet, each to its recipients; returns how many were sent."""
    claimed = _claim_pending(engine, settings)
    for alert, recipients in claimed:
        outcome = _send(alert, recipients, settings)[:500]
        with session_scope(engine) as db:
            db.execute(update(Alert).where(col(Alert.id) == alert.id).values(delivery=outcome))
    return len(claimed)
