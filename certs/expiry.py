"""Which certificates run out soon, so the gateway can renew them or warn the admin in time."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from cryptography import x509


def expiring_within(certs: Iterable[x509.Certificate], days: float, now: datetime) -> list[x509.Certificate]:
    """Certificates still valid at `now` that expire within `days`, soonest first (expired ones are left out)."""
    horizon = now + timedelta(days=days)
    soon = [cert for cert in certs if now < cert.not_valid_after_utc <= horizon]
    return sorted(soon, key=lambda cert: cert.not_valid_after_utc)
