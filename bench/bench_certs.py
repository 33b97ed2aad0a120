"""How fast the certificate library works, relative to the bare P-256 operations it is built on.

Run: python -m bench.bench_certs
Each figure is printed absolute and as a ratio against a baseline measured in this same process (one bare
ECDSA P-256 signature, and one P-256 key generation), so results from different machines can be compared.
"""

from __future__ import annotations

import base64
import os
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from certs import (
    CertState,
    CertStatus,
    RevocationReason,
    RevokedEntry,
    build_crl,
    build_ocsp_response,
    init_authority,
    issue_agent_with_generated_key,
    sign_agent_csr,
)


def seconds_per_call(action: Callable[[], object], budget: float = 2.0, minimum: int = 5) -> float:
    """Mean wall time of `action`, repeated until `budget` seconds have passed (at least `minimum` times)."""
    count, started = 0, time.perf_counter()
    while count < minimum or time.perf_counter() - started < budget:
        action()
        count += 1
    return (time.perf_counter() - started) / count


def main() -> None:
    now = datetime.now(UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    message = os.urandom(512)
    sign_s = seconds_per_call(lambda: key.sign(message, ec.ECDSA(hashes.SHA256())))
    keygen_s = seconds_per_call(lambda: ec.generate_private_key(ec.SECP256R1()))
    print(f"baseline  bare P-256 sign        {1 / sign_s:10.0f} /s   ({sign_s * 1e6:.1f} µs)")
    print(f"baseline  P-256 key generation   {1 / keygen_s:10.0f} /s   ({keygen_s * 1e6:.1f} µs)")

    with tempfile.TemporaryDirectory() as directory:
        authority = init_authority(Path(directory) / "ca", "bench passphrase", "Bench Org", now)
    wg_key = base64.b64encode(os.urandom(32)).decode("ascii")
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    from_csr_s = seconds_per_call(lambda: sign_agent_csr(authority, csr, "agent@corp.example", wg_key, now))
    generated_s = seconds_per_call(lambda: issue_agent_with_generated_key(authority, "agent@corp.example", wg_key, now))
    print(f"issue     agent cert from CSR    {1 / from_csr_s:10.0f} /s   = {from_csr_s / sign_s:.1f} bare signs each")
    print(
        f"issue     agent cert + new key   {1 / generated_s:10.0f} /s   "
        f"= {generated_s / sign_s:.1f} bare signs, {generated_s / keygen_s:.1f} key generations each"
    )

    revoked = [
        RevokedEntry(x509.random_serial_number(), now - timedelta(minutes=i), RevocationReason.key_compromise)
        for i in range(10_000)
    ]
    crl_s = seconds_per_call(
        lambda: build_crl(authority, revoked, 1, now, now + timedelta(hours=12)), budget=3.0, minimum=3
    )
    print(f"crl       10,000 revoked entries {crl_s * 1e3:10.1f} ms  = {crl_s / sign_s:.0f} bare signs")

    cert = sign_agent_csr(authority, csr, "agent@corp.example", wg_key, now)
    request = (
        ocsp.OCSPRequestBuilder()
        .add_certificate(cert, authority.issuing_cert, hashes.SHA1())  # noqa: S303 - what OCSP clients send
        .build()
        .public_bytes(serialization.Encoding.DER)
    )
    good = CertStatus(CertState.GOOD)
    ocsp_s = seconds_per_call(lambda: build_ocsp_response(authority, request, lambda serial: good, now))
    print(f"ocsp      answers                {1 / ocsp_s:10.0f} /s   = {ocsp_s / sign_s:.1f} bare signs each")


if __name__ == "__main__":
    main()
