"""Send new alerts by mail and SMS, outside any database transaction, each alert once.

An alert is claimed by turning its empty ``delivery`` into ``sending`` in one UPDATE, so two gateway nodes never
both send it; the outcome of each channel is then written back (``mail:sent sms:failed (…)``). A failed channel
is not retried: the alert stays on the wall and the alerts page for a supervisor to see.
"""

from sqlalchemy import Engine, update
from sqlmodel import col, select

from gateway.db import session_scope
from gateway.errors import GatewayError
from gateway.notify.sms import HttpSms
from gateway.supervision.mail import send_mail
from gateway.supervision.models import Alert
from gateway.supervision.settings import SupervisionSettings


def _claim_pending(engine: Engine) -> list[Alert]:
    with session_scope(engine) as db:
        pending = list(db.exec(select(Alert).where(Alert.delivery == "")).all())
        claimed = []
        for alert in pending:
            result = db.execute(
                update(Alert).where(col(Alert.id) == alert.id, col(Alert.delivery) == "").values(delivery="sending")
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                claimed.append(alert)
        return claimed


def _send(alert: Alert, settings: SupervisionSettings) -> str:
    outcomes = []
    if settings.alert_mail_to:
        try:
            send_mail(settings.mail, settings.alert_mail_to, f"[SOHO Gateway] {alert.rule}", alert.message)
            outcomes.append("mail:sent")
        except GatewayError as error:
            outcomes.append(f"mail:failed ({error.message})")
    sms = HttpSms(settings.sms)
    for number in settings.alert_sms_to:
        try:
            sms.send(number, f"SOHO Gateway alert: {alert.message}")
            outcomes.append("sms:sent")
        except GatewayError as error:
            outcomes.append(f"sms:failed ({error.message})")
    return " ".join(outcomes) or "no recipients configured"


def deliver_pending(engine: Engine, settings: SupervisionSettings) -> int:
    """Send every alert nobody sent yet; returns how many were sent."""
    claimed = _claim_pending(engine)
    for alert in claimed:
        outcome = _send(alert, settings)[:500]
        with session_scope(engine) as db:
            db.execute(update(Alert).where(col(Alert.id) == alert.id).values(delivery=outcome))
    return len(claimed)
