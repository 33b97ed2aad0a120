"""Surveys left ``sending`` (the SMS gateway hung, or the node died, before the outcome was recorded), retried by
the ``voice.surveys`` worker's own pass on SQLite and PostgreSQL: sent once, failed after the last attempt, and an
attempt given up on changes nothing when it ends at last.

The SMS gateway is a stand-in on loopback speaking the adapter's HTTP protocol (docs/voice.md, "SMS gateway"): it
delivers each ``Idempotency-Key`` once, as a gateway honouring the key does. A gateway that never answers is a
listening socket nobody accepts on: the request is written, nothing reads it.
"""

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.clock import as_utc, utcnow
from gateway.db import session_scope
from gateway.notify.sms import HttpSms, SmsSettings
from gateway.voice.models import SatisfactionSurvey, SurveyState
from gateway.voice.settings import SurveySettings
from gateway.voice.workers import SatisfactionSurveys
from tests.support.workers import one_pass, wait_for

CUSTOMER = "+8613900001111"
SETTINGS = SurveySettings(enabled=True, inbound_secret=SecretStr("s" * 20), text="Rate us", unconfirmed_seconds=300)
PAST_THE_BOUND = timedelta(seconds=SETTINGS.unconfirmed_seconds + 1)


class SmsGatewayStandIn:
    """Delivers each idempotency key once: a repeat is answered 409 while the first request with its key is still
    being answered, and afterwards 200, as the first was, without a second text. With ``hold_first`` it delivers the
    first message and then keeps its answer back until ``release`` is set."""

    def __init__(self, hold_first: bool) -> None:
        self.keys: list[str] = []
        self.delivered: list[str] = []
        self.in_flight: set[str] = set()
        self.release = threading.Event()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                key = self.headers["idempotency-key"]
                first = not stand_in.keys
                repeat = key in stand_in.keys
                stand_in.keys.append(key)
                if repeat:
                    self.send_response(409 if key in stand_in.in_flight else 200)
                    self.end_headers()
                    return
                stand_in.delivered.append(body["to"])
                stand_in.in_flight.add(key)
                if first and hold_first:
                    stand_in.release.wait(timeout=30)
                stand_in.in_flight.discard(key)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/send"


@contextmanager
def sms_gateway(hold_first: bool = False) -> Iterator[SmsGatewayStandIn]:
    stand_in = SmsGatewayStandIn(hold_first)
    thread = threading.Thread(target=stand_in.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stand_in
    finally:
        stand_in.release.set()
        stand_in.server.shutdown()
        stand_in.server.server_close()
        thread.join(timeout=5)


@contextmanager
def silent_gateway() -> Iterator[str]:
    """A gateway that takes the connection and never reads the request: closing it resets what waits."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/send"
    finally:
        listener.close()


def surveys_worker(
    engine: Engine, url: str, clock: Callable[[], datetime], settings: SurveySettings = SETTINGS
) -> SatisfactionSurveys:
    sms = HttpSms(SmsSettings(url=url, timeout_seconds=30))
    return SatisfactionSurveys(engine, sms, settings, clock)


def pass_in_background(engine: Engine, worker: SatisfactionSurveys) -> threading.Thread:
    """A pass that will hang on its SMS gateway, as a node's pass does when the gateway stops answering."""
    thread = threading.Thread(target=one_pass, args=(engine, worker), daemon=True)
    thread.start()
    return thread


def plan(engine: Engine, now: datetime) -> int:
    """One pending survey, as a customer call's end plans it."""
    with session_scope(engine) as db:
        survey = SatisfactionSurvey(
            call_event_id=1,
            session_id="s1",
            person_id="test:agent1",
            login="agent1",
            customer_e164=CUSTOMER,
            state=SurveyState.PENDING,
            created_at=now,
        )
        db.add(survey)
        db.flush()
        assert survey.id is not None
        return survey.id


def survey(engine: Engine, survey_id: int) -> SatisfactionSurvey:
    with session_scope(engine) as db:
        found = db.get(SatisfactionSurvey, survey_id)
        assert found is not None
        db.expunge(found)
        return found


def send_audit(engine: Engine) -> list[tuple[str, dict[str, object]]]:
    with session_scope(engine) as db:
        rows = db.exec(
            select(AuditEvent).where(AuditEvent.action == "voice.survey.send").order_by(col(AuditEvent.seq))
        ).all()
        return [(row.outcome, json.loads(row.detail)) for row in rows]


def attempt_began(engine: Engine, survey_id: int, at: datetime) -> Callable[[], bool]:
    def began() -> bool:
        taken = survey(engine, survey_id)
        return taken.state is SurveyState.SENDING and taken.sent_at is not None and as_utc(taken.sent_at) == at

    return began


def test_a_text_the_gateway_took_but_never_confirmed_is_retried_after_the_bound_and_delivered_once(
    engine: Engine,
) -> None:
    start = utcnow()
    survey_id = plan(engine, start)
    with sms_gateway(hold_first=True) as gateway:
        hung = pass_in_background(engine, surveys_worker(engine, gateway.url, lambda: start))
        assert wait_for(lambda: gateway.delivered == [CUSTOMER])

        one_pass(engine, surveys_worker(engine, gateway.url, lambda: start + PAST_THE_BOUND - timedelta(seconds=2)))
        assert survey(engine, survey_id).state is SurveyState.SENDING  # within the bound: the attempt may yet answer
        assert len(gateway.keys) == 1

        one_pass(engine, surveys_worker(engine, gateway.url, lambda: start + PAST_THE_BOUND))
        assert gateway.keys == [f"sohogw-survey-{survey_id}"] * 2  # the same key again: 409, the first is in flight
        retried = survey(engine, survey_id)
        assert retried.state is SurveyState.SENDING and retried.problem is None  # not failed: it may yet go out

        gateway.release.set()  # the hung attempt ends at last, with a 200, too late to count
        hung.join(timeout=10)
        one_pass(engine, surveys_worker(engine, gateway.url, lambda: start + 2 * PAST_THE_BOUND))
        assert gateway.keys == [f"sohogw-survey-{survey_id}"] * 3  # answered now as the first was: 200
    assert gateway.delivered == [CUSTOMER]  # so the customer got one text
    assert survey(engine, survey_id).state is SurveyState.SENT
    audit = send_audit(engine)
    assert [(outcome, detail.get("attempt"), detail.get("result")) for outcome, detail in audit] == [
        ("unconfirmed", 1, None),
        ("late", None, "sent"),
        ("unconfirmed", 2, None),
        ("ok", None, None),
    ]
    assert all(CUSTOMER not in json.dumps(detail) for _outcome, detail in audit)


def test_a_text_that_never_reached_the_gateway_is_sent_again_and_the_first_attempt_ending_late_changes_nothing(
    engine: Engine,
) -> None:
    start = utcnow()
    survey_id = plan(engine, start)
    with sms_gateway(hold_first=True) as gateway:
        with silent_gateway() as silent:
            first = pass_in_background(engine, surveys_worker(engine, silent, lambda: start))
            assert wait_for(attempt_began(engine, survey_id, start))
            retry = pass_in_background(engine, surveys_worker(engine, gateway.url, lambda: start + PAST_THE_BOUND))
            assert wait_for(lambda: gateway.delivered == [CUSTOMER])
        first.join(timeout=10)  # the silent gateway closed: the first attempt fails while the retry is in flight
        assert not first.is_alive()
        assert survey(engine, survey_id).state is SurveyState.SENDING  # the retry's, not failed by the first
        gateway.release.set()
        retry.join(timeout=10)
    assert survey(engine, survey_id).state is SurveyState.SENT
    assert gateway.delivered == [CUSTOMER]
    assert [(outcome, detail.get("result")) for outcome, detail in send_audit(engine)] == [
        ("unconfirmed", None),
        ("late", "failed"),
        ("ok", None),
    ]


def test_a_survey_unconfirmed_at_its_last_attempt_is_failed_and_audited_and_never_sent_again(engine: Engine) -> None:
    two_attempts = SETTINGS.model_copy(update={"attempts": 2})
    start = utcnow()
    survey_id = plan(engine, start)
    hung = []
    with silent_gateway() as silent:
        for attempt in range(2):
            began = start + attempt * PAST_THE_BOUND
            worker = surveys_worker(engine, silent, lambda began=began: began, two_attempts)  # type: ignore[misc]
            hung.append(pass_in_background(engine, worker))
            assert wait_for(attempt_began(engine, survey_id, began))
        with sms_gateway() as gateway:
            one_pass(engine, surveys_worker(engine, gateway.url, lambda: start + 2 * PAST_THE_BOUND, two_attempts))
            one_pass(engine, surveys_worker(engine, gateway.url, lambda: start + 9 * PAST_THE_BOUND, two_attempts))
            assert gateway.keys == []
    for thread in hung:
        thread.join(timeout=10)
    failed = survey(engine, survey_id)
    assert failed.state is SurveyState.FAILED and failed.sent_at is None
    assert failed.problem is not None and "2 attempt" in failed.problem
    assert [(outcome, detail.get("attempt")) for outcome, detail in send_audit(engine)] == [
        ("unconfirmed", 1),
        ("failed", 2),
        ("late", None),
        ("late", None),
    ]


def test_with_one_attempt_an_unconfirmed_survey_is_failed_not_sent_again(engine: Engine) -> None:
    one_attempt = SETTINGS.model_copy(update={"attempts": 1})
    start = utcnow()
    survey_id = plan(engine, start)
    with silent_gateway() as silent, sms_gateway() as gateway:
        hung = pass_in_background(engine, surveys_worker(engine, silent, lambda: start, one_attempt))
        assert wait_for(attempt_began(engine, survey_id, start))
        one_pass(engine, surveys_worker(engine, gateway.url, lambda: start + PAST_THE_BOUND, one_attempt))
        assert gateway.keys == []
    hung.join(timeout=10)
    assert survey(engine, survey_id).state is SurveyState.FAILED
