"""A revoked agent certificate is refused by openssl through our CRL and OCSP endpoints, on both databases."""

import subprocess
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from gateway.app import create_app
from gateway.db import session_scope
from gateway.pki import service
from tests.gateway.pki.conftest import Pki
from tests.support.server import serving

WG_KEY = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="


def _issue(pki: Pki) -> service.Issued:
    with session_scope(pki.engine) as db:
        return service.issue_agent_certificate(
            db,
            pki.authority,
            upn="alice@corp.example",
            wireguard_key=WG_KEY,
            person_id=None,
            actor=pki.actor,
            now=pki.now,
            lifetime=pki.lifetime,
            urls=pki.urls,
        )


def _files(pki: Pki, issued: service.Issued, tmp_path: Path) -> tuple[Path, Path, Path]:
    agent, root, issuing = tmp_path / "agent.pem", tmp_path / "root.pem", tmp_path / "issuing.pem"
    agent.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    root.write_bytes(pki.authority.root_cert.public_bytes(serialization.Encoding.PEM))
    issuing.write_bytes(pki.authority.issuing_cert.public_bytes(serialization.Encoding.PEM))
    return agent, root, issuing


def _openssl_verify_with_crl(base_url: str, agent: Path, root: Path, issuing: Path, tmp_path: Path) -> str:
    import httpx

    crl_der = httpx.get(f"{base_url}/pki/crl").raise_for_status().content
    crl = tmp_path / "crl.pem"
    crl.write_bytes(
        subprocess.run(
            ["openssl", "crl", "-inform", "DER", "-outform", "PEM"], input=crl_der, capture_output=True, check=True
        ).stdout
    )
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-crl_check",
            "-CAfile",
            str(root),
            "-untrusted",
            str(issuing),
            "-CRLfile",
            str(crl),
            str(agent),
        ],
        capture_output=True,
        text=True,
    )
    return result.stdout + result.stderr


def _openssl_ocsp(base_url: str, agent: Path, root: Path, issuing: Path) -> str:
    result = subprocess.run(
        [
            "openssl",
            "ocsp",
            "-issuer",
            str(issuing),
            "-cert",
            str(agent),
            "-url",
            f"{base_url}/pki/ocsp",
            "-CAfile",
            str(root),
            "-verify_other",
            str(issuing),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return result.stdout + result.stderr


def test_openssl_accepts_then_refuses_after_revocation(pki: Pki, tmp_path: Path) -> None:
    issued = _issue(pki)
    agent, root, issuing = _files(pki, issued, tmp_path)
    app = create_app(pki.settings, engine=pki.engine, authority=pki.authority, run_jobs=False)
    with serving(app) as base_url:
        assert _openssl_verify_with_crl(base_url, agent, root, issuing, tmp_path).strip().endswith("OK")
        assert f"{agent}: good" in _openssl_ocsp(base_url, agent, root, issuing)

        with session_scope(pki.engine) as db:
            service.revoke(
                db,
                pki.authority,
                issued.row.serial,
                "keyCompromise",
                actor=pki.actor,
                now=pki.now,
                crl_validity=pki.lifetime,
            )

        verdict = _openssl_verify_with_crl(base_url, agent, root, issuing, tmp_path)
        assert "certificate revoked" in verdict
        ocsp = _openssl_ocsp(base_url, agent, root, issuing)
        assert f"{agent}: revoked" in ocsp
        assert "Reason: keyCompromise" in ocsp


def test_ocsp_answers_malformed_request_without_failing(pki: Pki) -> None:
    from cryptography.x509 import ocsp
    from fastapi.testclient import TestClient

    app = create_app(pki.settings, engine=pki.engine, authority=pki.authority, run_jobs=False)
    with TestClient(app) as client:
        answer = client.post(
            "/pki/ocsp", content=b"not an OCSP request", headers={"content-type": "application/ocsp-request"}
        )
    assert answer.status_code == 200
    assert ocsp.load_der_ocsp_response(answer.content).response_status == ocsp.OCSPResponseStatus.MALFORMED_REQUEST


def test_ocsp_get_with_non_ascii_in_the_path_is_a_clean_client_error(pki: Pki) -> None:
    from fastapi.testclient import TestClient

    app = create_app(pki.settings, engine=pki.engine, authority=pki.authority, run_jobs=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/pki/ocsp/%C3%A9t%C3%A9", headers={"accept": "application/json"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "bad_request", "message": "the OCSP request in the URL is not base64"}
