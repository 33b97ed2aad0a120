"""What the sweep of unconfirmed surveys adds to a ``voice.surveys`` pass, on SQLite and (when installed) PostgreSQL.

The store holds ``--history`` surveys already sent, each with its ``voice.survey.send`` audit row, as passes leave
them. Measured in alternation in the same process: the baseline, a pass as it was before the sweep
(the runner's transaction with nothing in it, then ``send_pending_surveys`` with nothing pending), against the
worker's whole pass (the sweep in that transaction, then the send) with nothing stuck. Then one pass over
``--stuck`` surveys left ``sending`` past the bound: the sweep (each one's earlier attempts counted in the audit log)
and, apart, texting them again to a loopback SMS gateway.

Run: ip netns exec <namespace> .venv/bin/python -m bench.bench_surveys [--history 5000] [--stuck 20] [--rounds 5]
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from sqlalchemy import Engine, func
from sqlmodel import select

from bench.bench_throttle import databases
from bench.interleave import alternate
from gateway.audit.service import record
from gateway.clock import utcnow
from gateway.db import make_engine, session_scope
from gateway.notify.sms import HttpSms, SmsSettings
from gateway.voice.models import SatisfactionSurvey, SurveyState
from gateway.voice.settings import SurveySettings
from gateway.voice.surveys import send_pending_surveys
from gateway.voice.workers import SatisfactionSurveys
from tests.gateway.voice.http_apps import Receiver
from tests.support.server import serving
from tests.support.workers import one_pass

SETTINGS = SurveySettings(enabled=True, inbound_secret=SecretStr("b" * 20), text="Rate us 1-5")


def add_surveys(engine: Engine, first: int, count: int, state: SurveyState) -> None:
    """``count`` surveys texted (``sent``, with the audit row a pass leaves) or taken (``sending``) an hour ago."""
    an_hour_ago = utcnow() - timedelta(hours=1)
    with session_scope(engine) as db:
        for number in range(first, first + count):
            survey = SatisfactionSurvey(
                call_event_id=number + 1,
                session_id=f"s{number % 50}",
                person_id=f"test:agent{number % 50}",
                login=f"agent{number % 50}",
                customer_e164=f"+86139{number:08d}",
                state=state,
                created_at=an_hour_ago,
                sent_at=an_hour_ago,
            )
            db.add(survey)
            db.flush()
            if state is SurveyState.SENT:
                record(db, actor="voice.survey", action="voice.survey.send", outcome="ok", target=str(survey.id))


def per_pass_ms(operation: Callable[[], object], seconds: float = 0.5) -> float:
    passes, started = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - started) < seconds:
        operation()
        passes += 1
    return elapsed / passes * 1000


def measure(url: str, sms_url: str, history: int, stuck: int, rounds: int) -> tuple[float, float, float, float, int]:
    """(baseline ms per pass, whole pass ms with nothing stuck, ms to sweep the stuck, ms to text them, texts sent)."""
    engine = make_engine(url)
    try:
        add_surveys(engine, 0, history, SurveyState.SENT)
        sms = HttpSms(SmsSettings(url=sms_url))
        worker = SatisfactionSurveys(engine, sms, SETTINGS, utcnow)

        def before() -> None:
            """The worker's pass before the sweep: the runner's (empty) transaction for ``desired``, then the send."""
            with session_scope(engine):
                pass
            send_pending_surveys(lambda: session_scope(engine), sms, SETTINGS, utcnow())

        runs = alternate(
            {"baseline": lambda: per_pass_ms(before), "sweep": lambda: per_pass_ms(lambda: one_pass(engine, worker))},
            rounds,
        )
        add_surveys(engine, history, stuck, SurveyState.SENDING)
        started = time.perf_counter()
        with session_scope(engine) as db:
            worker.desired(db, [])
        swept = time.perf_counter()
        worker.apply(None, None)
        texted_at = time.perf_counter()
        with session_scope(engine) as db:
            texted = db.exec(select(func.count()).where(SatisfactionSurvey.state == SurveyState.SENT)).one() - history
        sweep_ms, text_ms = (swept - started) * 1000, (texted_at - swept) * 1000
        return statistics.median(runs["baseline"]), statistics.median(runs["sweep"]), sweep_ms, text_ms, texted
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=5000)
    parser.add_argument("--stuck", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sms_gateway = Receiver()
    with tempfile.TemporaryDirectory() as scratch, databases(Path(scratch)) as urls, serving(sms_gateway.app) as sms:
        print(f"{args.history} surveys sent before; median of {args.rounds} alternating rounds of 0.5 s")
        sweep_header, text_header = f"sweep {args.stuck} stuck", f"text {args.stuck} again"
        print(f"{'store':<11} {'baseline pass':>14} {'pass + sweep':>13} {sweep_header:>15} {text_header:>14} texted")
        for name, url in urls:
            baseline, sweep, sweep_stuck, text_again, texted = measure(
                url, f"{sms}/send", args.history, args.stuck, args.rounds
            )
            print(
                f"{name:<11} {baseline:>11.2f} ms {sweep:>10.2f} ms {sweep_stuck:>12.1f} ms {text_again:>11.1f} ms"
                f" {texted:>6}"
            )


if __name__ == "__main__":
    main()
