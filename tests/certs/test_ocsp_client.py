"""Asking a company's OCSP responder: a delegated responder is believed, a forged answer is not."""

from __future__ import annotations

import socket
import time
from datetime import datetime

import pytest

from certs import CertificateRevokedError, HttpRevocationChecker, RevocationUnknown
from tests.certs.company_ca import CompanyCa, DelegatedResponder
from tests.certs.conftest import LocalHttpServer


def test_delegated_responder_answers_are_believed_good_then_revoked(
    now: datetime, http_server: LocalHttpServer
) -> None:
    company = CompanyCa.create(now)
    responder = DelegatedResponder.for_ca(company, now)
    http_server.routes[("POST", "/ocsp")] = lambda body: (
        "application/ocsp-response",
        responder.answer(body, company.issuing, now),
    )
    cert = company.user_certificate("li.na@corp.example", now, ocsp_url=f"{http_server.base_url}/ocsp")
    checker = HttpRevocationChecker(timeout_seconds=2.0)
    checker.check(cert, company.issuing, now)
    responder.revoked.add(cert.serial_number)
    with pytest.raises(CertificateRevokedError):
        checker.check(cert, company.issuing, now)


def test_answer_signed_by_a_responder_of_another_ca_is_not_believed(
    now: datetime, http_server: LocalHttpServer
) -> None:
    company, impostor = CompanyCa.create(now), CompanyCa.create(now)
    forger = DelegatedResponder.for_ca(impostor, now)
    http_server.routes[("POST", "/ocsp")] = lambda body: (
        "application/ocsp-response",
        forger.answer(body, company.issuing, now),
    )
    cert = company.user_certificate("li.na@corp.example", now, ocsp_url=f"{http_server.base_url}/ocsp")
    with pytest.raises(RevocationUnknown, match="not signed by its issuer"):
        HttpRevocationChecker(timeout_seconds=2.0).check(cert, company.issuing, now)


def test_error_page_instead_of_an_ocsp_answer_fails_closed(now: datetime, http_server: LocalHttpServer) -> None:
    company = CompanyCa.create(now)
    http_server.routes[("POST", "/ocsp")] = lambda body: ("text/html", b"<html>proxy error</html>")
    cert = company.user_certificate("li.na@corp.example", now, ocsp_url=f"{http_server.base_url}/ocsp")
    with pytest.raises(RevocationUnknown):
        HttpRevocationChecker(timeout_seconds=2.0).check(cert, company.issuing, now)


def test_responder_that_never_answers_times_out_and_fails_closed(now: datetime) -> None:
    company = CompanyCa.create(now)
    with socket.socket() as silent:  # accepts connections (kernel backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/ocsp"
        cert = company.user_certificate("li.na@corp.example", now, ocsp_url=url)
        started = time.monotonic()
        with pytest.raises(RevocationUnknown, match="timed out"):
            HttpRevocationChecker(timeout_seconds=0.5).check(cert, company.issuing, now)
        assert time.monotonic() - started < 5
