"""The PKI's scheduled jobs: republish the CRL before it goes stale, warn about expiring certificates, keep the TLS
layer's client CA list equal to the trusted CAs."""

from datetime import timedelta

from apscheduler.schedulers.base import BaseScheduler
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from certs.authority import Authority
from gateway.clock import Clock
from gateway.db import session_scope
from gateway.pki.client_cas import REFRESH_SECONDS, ClientCaBundle
from gateway.pki.expiry import warn_expiring
from gateway.pki.service import publish_crl
from gateway.settings import Settings


def register(
    scheduler: BaseScheduler,
    engine: Engine,
    authority: Authority,
    settings: Settings,
    clock: Clock,
    client_cas: ClientCaBundle | None = None,
) -> None:
    def refresh_crl() -> None:
        try:
            with session_scope(engine) as db:
                publish_crl(db, authority, now=clock(), validity=timedelta(hours=settings.ca.crl_validity_hours))
        except IntegrityError:
            pass  # another node published this number a moment ago; its CRL is as fresh as ours

    def expiry_warning() -> None:
        with session_scope(engine) as db:
            warn_expiring(db, now=clock(), days=settings.ca.expiry_warning_days)

    scheduler.add_job(
        refresh_crl, "interval", minutes=settings.ca.crl_refresh_minutes, id="pki.crl", next_run_time=clock()
    )
    scheduler.add_job(expiry_warning, "interval", hours=6, id="pki.expiry", next_run_time=clock())
    if client_cas is not None:
        scheduler.add_job(client_cas.refresh, "interval", seconds=REFRESH_SECONDS, id="pki.client_cas")
