"""The PKI's background work: republish the CRL before it goes stale, warn about expiring certificates, keep the TLS
layer's client CA list equal to the trusted CAs."""

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from certs.authority import Authority
from gateway.clock import Clock
from gateway.db import session_scope
from gateway.pki.client_cas import REFRESH_SECONDS, ClientCaBundle
from gateway.pki.expiry import warn_expiring
from gateway.pki.service import publish_crl
from gateway.pki.settings import HasCaSection
from gateway.workers.contract import Nudge, Schedule, Scope, Worker

EXPIRY_HOURS = 6


class CrlPublication(Worker[None, None]):
    """Once per interval in the cluster: a CRL number is the cluster's, not a node's."""

    name = "pki.crl"

    def __init__(self, engine: Engine, authority: Authority, settings: HasCaSection, clock: Clock) -> None:
        self.engine, self.authority, self.clock = engine, authority, clock
        self.validity = timedelta(hours=settings.ca.crl_validity_hours)
        self.schedule = Schedule(interval=timedelta(minutes=settings.ca.crl_refresh_minutes), scope=Scope.CLUSTER)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        try:
            with session_scope(self.engine) as db:
                publish_crl(db, self.authority, now=self.clock(), validity=self.validity)
        except IntegrityError:
            pass  # another node published this number a moment ago; its CRL is as fresh as ours


class ExpiryWarning(Worker[None, None]):
    """Warns (audit row, supervision alert) about certificates close to their end; the database is its world."""

    name = "pki.expiry"
    schedule = Schedule(interval=timedelta(hours=EXPIRY_HOURS), scope=Scope.CLUSTER)

    def __init__(self, settings: HasCaSection, clock: Clock) -> None:
        self.days, self.clock = settings.ca.expiry_warning_days, clock

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        warn_expiring(db, now=self.clock(), days=self.days)

    def apply(self, desired: None, observed: None) -> None:
        return None


class ClientCaRefresh(Worker[None, None]):
    """This node's TLS layer's list of client CAs, re-read from the trusted CAs."""

    name = "pki.client_cas"
    schedule = Schedule(
        interval=timedelta(seconds=REFRESH_SECONDS), first_pass_delay=timedelta(seconds=REFRESH_SECONDS)
    )

    def __init__(self, client_cas: ClientCaBundle) -> None:
        self.client_cas = client_cas

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        self.client_cas.refresh()


def pki_workers(
    engine: Engine, authority: Authority, settings: HasCaSection, clock: Clock, client_cas: ClientCaBundle | None
) -> list[Worker[Any, Any]]:
    workers: list[Worker[Any, Any]] = [
        CrlPublication(engine, authority, settings, clock),
        ExpiryWarning(settings, clock),
    ]
    if client_cas is not None:
        workers.append(ClientCaRefresh(client_cas))
    return workers
