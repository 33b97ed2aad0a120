"""pkilint (DigiCert's RFC 5280 linter) finds nothing at WARNING or above in what our CA produces."""

from __future__ import annotations

import ipaddress
import json
import subprocess
from datetime import datetime, timedelta
from pathlib import Path

from certs import (
    Authority,
    PublicationUrls,
    RevocationReason,
    RevokedEntry,
    build_crl,
    issue_agent_with_generated_key,
    issue_server_certificate,
    renew_certificate,
    wireguard_key_of,
)
from tests.certs.conftest import write_pem

URLS = PublicationUrls(ocsp_url="http://ca.example.test/ocsp", crl_url="http://ca.example.test/issuing.crl")
LINT_BIN = Path(__file__).resolve().parents[2] / ".venv" / "bin"


def findings(command: str, path: Path, *options: str) -> list[dict[str, object]]:
    """pkilint's findings of severity WARNING or worse; a tool failure fails the test."""
    result = subprocess.run(
        [str(LINT_BIN / command), "lint", *options, "-s", "WARNING", "-f", "JSON", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert not result.stderr.strip(), result.stderr
    reported: list[dict[str, object]] = json.loads(result.stdout)["results"]
    return reported


def test_root_and_issuing_ca_certificates_lint_clean(authority: Authority, tmp_path: Path) -> None:
    assert findings("lint_pkix_cert", write_pem(tmp_path / "root.pem", authority.root_cert)) == []
    assert findings("lint_pkix_cert", write_pem(tmp_path / "issuing.pem", authority.issuing_cert)) == []


def test_server_certificate_lints_clean(authority: Authority, now: datetime, tmp_path: Path) -> None:
    cert = issue_server_certificate(
        authority, ["portal.example.test"], [ipaddress.ip_address("192.0.2.10")], now, urls=URLS
    ).cert
    assert findings("lint_pkix_cert", write_pem(tmp_path / "server.pem", cert)) == []


def test_agent_certificate_with_its_wireguard_key_lints_clean(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path
) -> None:
    cert = issue_agent_with_generated_key(
        authority, "alice@corp.example", wg_key, now, email="alice@corp.example", urls=URLS
    ).cert
    assert wireguard_key_of(cert) == wg_key
    assert findings("lint_pkix_cert", write_pem(tmp_path / "agent.pem", cert)) == []


def test_renewed_agent_certificate_lints_clean(
    authority: Authority, now: datetime, wg_key: str, tmp_path: Path
) -> None:
    old = issue_agent_with_generated_key(authority, "alice@corp.example", wg_key, now, urls=URLS).cert
    renewed = renew_certificate(authority, old, now + timedelta(days=6), urls=URLS)
    assert wireguard_key_of(renewed) == wg_key
    assert findings("lint_pkix_cert", write_pem(tmp_path / "renewed.pem", renewed)) == []


def test_crl_lints_clean(authority: Authority, now: datetime, tmp_path: Path) -> None:
    crl = build_crl(
        authority,
        [RevokedEntry(1234, now, RevocationReason.key_compromise), RevokedEntry(5678, now)],
        7,
        now,
        now + timedelta(days=1),
    )
    assert findings("lint_crl", write_pem(tmp_path / "issuing.crl.pem", crl), "-t", "CRL", "-p", "PKIX") == []
