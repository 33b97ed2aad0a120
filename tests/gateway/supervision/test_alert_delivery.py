"""Alerts reach a real SMTP server and an HTTP SMS gateway, raised by the real scheduler within 10 s."""

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import select

from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.notify.sms import SmsSettings
from gateway.supervision.delivery import deliver_pending
from gateway.supervision.models import Alert, WorkStatus
from gateway.supervision.settings import MailSettings, SupervisionSettings, TeamAlertRecipients
from gateway.supervision.state import set_work_state
from gateway.supervision.workers import supervision_workers
from gateway.workers.runner import WorkerRunner
from tests.gateway.supervision.conftest import SmsGateway, SmtpServer, add_session

BREAK_SECONDS = 3.0


def _settings(smtp: SmtpServer, sms: SmsGateway) -> SupervisionSettings:
    return SupervisionSettings(
        break_max_minutes=BREAK_SECONDS / 60,
        alert_check_seconds=1,
        alert_mail_to=["duty-supervisor@corp.example"],
        alert_sms_to=["+8613800138000"],
        mail=MailSettings(host="127.0.0.1", port=smtp.port, sender="sohogw@corp.example"),
        sms=SmsSettings(url=sms.url, bearer_token="sms-token"),
    )


def test_break_alert_arrives_by_mail_and_sms_within_ten_seconds_of_the_threshold(
    engine: Engine, smtp_server: SmtpServer, sms_gateway: SmsGateway
) -> None:
    settings = _settings(smtp_server, sms_gateway)
    with session_scope(engine) as db:
        agent = add_session(db, "agent1", created_at=utcnow())
        started = utcnow()
        set_work_state(db, agent, WorkStatus.BREAK, "lunch", source="portal", now=started)
    threshold = started + timedelta(seconds=BREAK_SECONDS)
    runner = WorkerRunner(supervision_workers(engine, settings, utcnow), engine)
    runner.start()
    try:
        messages = smtp_server.inbox.wait_for(1, timeout=BREAK_SECONDS + 12)
        deadline = time.monotonic() + 5
        while not sms_gateway.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        runner.stop()
    assert len(messages) == 1, "exactly one mail: the open alert is not raised again on later runs"
    arrived, mail = messages[0]
    assert arrived > threshold
    assert (arrived - threshold).total_seconds() < 10
    assert mail["To"] == "duty-supervisor@corp.example" and mail["Subject"] == "[SOHO Gateway] break_too_long"
    assert "Agent1 (agent1) has been on a lunch break" in mail.get_payload()
    (sms_at, body, authorization), *more = sms_gateway.received
    assert not more
    assert body["to"] == "+8613800138000" and "lunch break" in str(body["text"])
    assert authorization == "Bearer sms-token"
    assert (sms_at - threshold).total_seconds() < 10
    with session_scope(engine) as db:
        (alert,) = db.exec(select(Alert)).all()
    assert alert.delivery == "mail:sent sms:sent"


def test_a_refused_sms_and_a_missing_smtp_server_are_recorded_not_retried(
    engine: Engine, sms_gateway: SmsGateway
) -> None:
    sms_gateway.status[0] = 500
    settings = SupervisionSettings(
        alert_mail_to=["duty@corp.example"], alert_sms_to=["+8613800138000"], sms=SmsSettings(url=sms_gateway.url)
    )
    now = datetime.now(UTC)
    with session_scope(engine) as db:
        db.add(Alert(rule="vpn_down", subject="s1", login="agent1", open_key="vpn_down:s1", message="m", raised_at=now))
    assert deliver_pending(engine, settings) == 1
    assert deliver_pending(engine, settings) == 0
    with session_scope(engine) as db:
        (alert,) = db.exec(select(Alert)).all()
    assert alert.delivery.startswith("mail:failed (no SMTP server is configured")
    assert "sms:failed (the SMS gateway at" in alert.delivery and "HTTP 500" in alert.delivery
    assert len(sms_gateway.received) == 1


def test_a_teams_alerts_reach_that_teams_supervisors_only_and_the_duty_desk_gets_every_alert(
    engine: Engine, smtp_server: SmtpServer, sms_gateway: SmsGateway
) -> None:
    settings = SupervisionSettings(
        alert_mail_to=["duty@corp.example"],
        team_alerts={  # keyed as the policy names the groups; compared as the policy compares them
            "team-north": TeamAlertRecipients(mail_to=["north@corp.example"], sms_to=["+8613800138001"]),
            "Team-South": TeamAlertRecipients(mail_to=["south@corp.example"], sms_to=["+8613800138002"]),
        },
        mail=MailSettings(host="127.0.0.1", port=smtp_server.port, sender="sohogw@corp.example"),
        sms=SmsSettings(url=sms_gateway.url),
    )
    now = utcnow()
    with session_scope(engine) as db:
        add_session(db, "agent1", created_at=now)  # in Team-North
        add_session(db, "agent2", created_at=now)  # in Team-South
        for login in ("agent1", "agent2", None):  # None: a certificate nobody holds
            key = f"vpn_down:{login}"
            db.add(
                Alert(rule="vpn_down", subject=key, login=login, open_key=key, message=f"about {login}", raised_at=now)
            )
    assert deliver_pending(engine, settings) == 3
    mails = smtp_server.inbox.wait_for(3, timeout=10)
    assert {str(mail.get_payload()).strip(): mail["To"] for _arrived, mail in mails} == {
        "about agent1": "duty@corp.example, north@corp.example",
        "about agent2": "duty@corp.example, south@corp.example",
        "about None": "duty@corp.example",
    }
    assert sorted((str(body["to"]), str(body["text"])) for _at, body, _auth in sms_gateway.received) == [
        ("+8613800138001", "SOHO Gateway alert: about agent1"),
        ("+8613800138002", "SOHO Gateway alert: about agent2"),
    ]
