"""`sohogw cert renew` of an agent certificate issued before certificates were bound to a person (``person_id``
NULL): the successor is bound to the one person whose sessions signed in with it, as migration 0025 bound the
others; one no session used, or that sessions of two people or a legacy session used, stays unbound. Before, every
renewal of such a certificate stayed unbound, matched by name for ever."""

from pathlib import Path

import pytest
from cryptography import x509

from gateway.db import session_scope
from gateway.pki import service
from tests.gateway.pki.conftest import Pki
from tests.gateway.test_migrations import _insert_at
from tests.vpn.keys import key_pair


@pytest.mark.parametrize(
    ("signed_in_as", "bound_to"),
    [
        (["guid-alice", "guid-alice"], "guid-alice"),
        ([], None),
        (["guid-alice", "guid-bob"], None),
        (["guid-alice", "legacy:alice"], None),
    ],
    ids=["one-person", "unused", "two-people", "one-person-and-legacy"],
)
def test_renewing_an_unbound_certificate_binds_it_to_the_one_person_who_signed_in_with_it(
    pki: Pki, run, tmp_path: Path, signed_in_as: list[str], bound_to: str | None
) -> None:  # type: ignore[no-untyped-def]
    with session_scope(pki.engine) as db:
        old = service.issue_agent_certificate(
            db,
            pki.authority,
            upn="alice@corp.example",
            wireguard_key=key_pair()[1],
            person_id=None,
            actor=pki.actor,
            now=pki.now,
            lifetime=pki.lifetime,
            urls=pki.urls,
        ).row
    for n, person in enumerate(signed_in_as):
        _insert_at(
            pki.engine,
            "home_session",
            id=f"s{n}",
            token_sha256=f"t{n}",
            person_id=person,
            login="alice",
            state="ENDED",
            cert_fingerprint=old.fingerprint_sha256,
        )
    renewed = run("cert", "renew", old.serial, "--out", str(tmp_path / "renewed.pem"))
    assert renewed.exit_code == 0, renewed.output
    successor = service.serial_hex(
        x509.load_pem_x509_certificate((tmp_path / "renewed.pem").read_bytes()).serial_number
    )
    with session_scope(pki.engine) as db:
        assert (
            service.get_certificate(db, old.serial).person_id,
            service.get_certificate(db, successor).person_id,
        ) == (
            None,
            bound_to,
        )
