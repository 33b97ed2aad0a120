"""Warn about certificates that expire soon, through hooks that other domains register.

Supervision turns the warning into an alert; until it registers, the warning is logged and audited.
"""

import logging
from collections.abc import Callable
from datetime import datetime

from sqlmodel import Session

from gateway.audit.service import record
from gateway.pki.models import IssuedCertificate
from gateway.pki.service import list_certificates

log = logging.getLogger(__name__)

ExpiryHook = Callable[[Session, list[IssuedCertificate]], None]
_hooks: list[ExpiryHook] = []


def on_expiring(hook: ExpiryHook) -> ExpiryHook:
    """Register a hook called with the certificates that expire within the warning window."""
    if hook not in _hooks:
        _hooks.append(hook)
    return hook


def warn_expiring(db: Session, *, now: datetime, days: int) -> list[IssuedCertificate]:
    expiring = list_certificates(db, now=now, expiring_within_days=days, include_revoked=False)
    for row in expiring:
        log.warning("certificate %s of %s expires at %s", row.serial, row.upn or row.subject, row.not_after)
    if expiring:
        record(
            db,
            actor="system",
            action="cert.expiring",
            outcome="warning",
            detail={"days": days, "serials": [row.serial for row in expiring]},
        )
    for hook in list(_hooks):
        hook(db, expiring)
    return expiring
