"""A company CRL is asked for again within seconds, politely: conditional GETs, the server's Cache-Control obeyed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs import Authority, CertificateRevokedError, HttpRevocationChecker, TrustStore, verify_client_certificate
from tests.certs.company_ca import CompanyCa
from tests.certs.crl_server import CrlDistributionPoint

MAX_AGE = timedelta(seconds=30)


@pytest.fixture
def company(now: datetime) -> CompanyCa:
    return CompanyCa.create(now)


@pytest.fixture
def trust(authority: Authority, company: CompanyCa) -> TrustStore:
    pem = serialization.Encoding.PEM
    return TrustStore.build(authority.chain, [company.root.public_bytes(pem), company.issuing.public_bytes(pem)])


@pytest.fixture
def point() -> Iterator[CrlDistributionPoint]:
    served = CrlDistributionPoint(cache_control="max-age=5")
    yield served
    served.stop()


def _user(company: CompanyCa, point: CrlDistributionPoint, now: datetime) -> x509.Certificate:
    return company.user_certificate("zhang.wei@corp.example", now, crl_url=point.url)


def test_crl_is_revalidated_with_its_etag_and_an_unchanged_one_costs_a_304(
    trust: TrustStore, company: CompanyCa, point: CrlDistributionPoint, now: datetime
) -> None:
    checker = HttpRevocationChecker(timeout_seconds=2, max_age=MAX_AGE)
    user = _user(company, point, now)
    point.publish(company.crl([], now, now + timedelta(days=7)))
    verify_client_certificate(user, trust, now, checker)
    verify_client_certificate(user, trust, now + timedelta(seconds=4), checker)  # the server said max-age=5
    assert point.answers == [200]
    verify_client_certificate(user, trust, now + timedelta(seconds=6), checker)
    assert point.answers == [200, 304]


def test_revocation_is_obeyed_at_the_next_refresh_not_at_next_update(
    trust: TrustStore, company: CompanyCa, point: CrlDistributionPoint, now: datetime
) -> None:
    checker = HttpRevocationChecker(timeout_seconds=2, max_age=MAX_AGE)
    user = _user(company, point, now)
    point.publish(company.crl([], now, now + timedelta(days=7)))
    verify_client_certificate(user, trust, now, checker)
    assert checker.refresh(now + timedelta(seconds=2)) == []  # not due: nothing asked
    assert checker.refresh(now + timedelta(seconds=6)) == []  # due, unchanged: a 304
    point.publish(company.crl([user.serial_number], now, now + timedelta(days=7)))
    assert checker.refresh(now + timedelta(seconds=12)) == [point.url]
    assert point.answers == [200, 304, 200]
    with pytest.raises(CertificateRevokedError):
        verify_client_certificate(user, trust, now + timedelta(seconds=13), checker)


def test_our_max_age_caps_a_server_that_says_keep_it_for_a_day(
    trust: TrustStore, company: CompanyCa, point: CrlDistributionPoint, now: datetime
) -> None:
    point.cache_control = "public, max-age=86400"
    checker = HttpRevocationChecker(timeout_seconds=2, max_age=MAX_AGE)
    user = _user(company, point, now)
    point.publish(company.crl([], now, now + timedelta(days=7)))
    verify_client_certificate(user, trust, now, checker)
    point.publish(company.crl([user.serial_number], now, now + timedelta(days=7)))
    verify_client_certificate(user, trust, now + timedelta(seconds=29), checker)
    with pytest.raises(CertificateRevokedError):
        verify_client_certificate(user, trust, now + timedelta(seconds=31), checker)


def test_no_cache_means_asking_every_time(
    trust: TrustStore, company: CompanyCa, point: CrlDistributionPoint, now: datetime
) -> None:
    point.cache_control = "no-cache"
    checker = HttpRevocationChecker(timeout_seconds=2, max_age=MAX_AGE)
    user = _user(company, point, now)
    point.publish(company.crl([], now, now + timedelta(days=7)))
    for second in range(3):
        verify_client_certificate(user, trust, now + timedelta(seconds=second), checker)
    assert point.answers == [200, 304, 304]


def test_an_unreachable_crl_server_is_bridged_by_the_last_good_crl_until_its_next_update(
    trust: TrustStore, company: CompanyCa, point: CrlDistributionPoint, now: datetime
) -> None:
    checker = HttpRevocationChecker(timeout_seconds=2, max_age=MAX_AGE)
    user = _user(company, point, now)
    point.publish(company.crl([], now, now + timedelta(hours=1)))
    verify_client_certificate(user, trust, now, checker)
    point.stop()
    verify_client_certificate(user, trust, now + timedelta(minutes=59), checker)
    assert checker.refresh(now + timedelta(minutes=59)) == []


@pytest.mark.parametrize(
    ("replayed_age", "replayed_number"),
    [(timedelta(hours=1), 1), (timedelta(0), 1)],
    ids=["older-this-update", "same-this-update-lower-crl-number"],
)
def test_a_replayed_older_crl_does_not_unrevoke_and_is_reported(
    trust: TrustStore,
    company: CompanyCa,
    point: CrlDistributionPoint,
    now: datetime,
    replayed_age: timedelta,
    replayed_number: int,
) -> None:
    checker = HttpRevocationChecker(timeout_seconds=2, max_age=MAX_AGE)
    user = _user(company, point, now)
    before_revocation = company.crl([], now - replayed_age, now + timedelta(days=7), number=replayed_number)
    point.publish(before_revocation)
    verify_client_certificate(user, trust, now, checker)
    point.publish(company.crl([user.serial_number], now, now + timedelta(days=7), number=2))
    assert checker.refresh(now + timedelta(seconds=1), everything=True) == [point.url]

    point.publish(before_revocation)  # an attacker on the plain-HTTP path serves the CRL from before the revocation
    assert checker.refresh(now + timedelta(seconds=2), everything=True) == []
    assert point.answers == [200, 200, 200]
    with pytest.raises(CertificateRevokedError):
        verify_client_certificate(user, trust, now + timedelta(seconds=3), checker)
    with pytest.raises(CertificateRevokedError):
        verify_client_certificate(user, trust, now + timedelta(seconds=40), checker)  # asked again, refused again

    rollbacks = checker.take_rollbacks()
    assert [(r.url, r.held_number, r.offered_number) for r in rollbacks] == [(point.url, 2, replayed_number)] * 2
    assert rollbacks[0].offered_this_update == now - replayed_age
    assert checker.take_rollbacks() == []
