"""The proxy's hop over TLS (``portal.proxy_certificate_file``): the node believes forwarded headers only on a
connection whose TLS peer proved the proxy's certificate, so the right secret from the right address is not enough
without it. A real TLS socket; the test client plays the proxy (from 127.0.0.1, the allowed address)."""

import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.settings import SettingsError, load_settings
from gateway.web.tls import tls_options
from tests.gateway.nodes.cluster import self_signed
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, WG_KEYS, Portal, page_error, sign_in
from tests.support import portal as whole


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    node_cert, node_key = self_signed(tmp_path, "node")
    proxy_cert, _ = self_signed(tmp_path, "proxy")
    hop = {"tls_cert_file": str(node_cert), "tls_key_file": str(node_key), "proxy_certificate_file": str(proxy_cert)}
    with whole.serving_portal(
        tmp_path / "portal",
        db_url,
        engine,
        kind=Portal,
        passwords=PASSWORDS,
        groups=GROUPS,
        certified=WG_KEYS,
        trusted_proxy=True,
        settings={"portal": hop},
        tls=tls_options(node_cert, node_key, proxy_cert),
    ) as running:
        yield running


def _as(portal: Portal, tmp_path: Path, presented: str | None) -> httpx.Client:
    """A client of the node's TLS port presenting ``presented``'s certificate (made by ``self_signed``), or none."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # the test's own self-signed node
    if presented is not None:
        context.load_cert_chain(tmp_path / f"{presented}.crt", tmp_path / f"{presented}.key")
    return httpx.Client(base_url=portal.base_url, verify=context, timeout=portal.client_timeout)


def _ignored(portal: Portal) -> list[tuple[str, str]]:
    with session_scope(portal.engine) as db:
        query = select(AuditEvent).where(AuditEvent.action == "proxy.forwarding_ignored").order_by(col(AuditEvent.seq))
        return [(event.source, event.outcome) for event in db.exec(query)]


def test_the_proxy_presenting_its_certificate_is_believed(portal: Portal, tmp_path: Path) -> None:
    with _as(portal, tmp_path, "proxy") as proxy:
        answer = sign_in(proxy, "agent1", headers=portal.proxy_headers("agent1"))
    assert answer.status_code == 303, page_error(answer)
    assert _ignored(portal) == []


@pytest.mark.parametrize("presented", [None, "sniffer"])
def test_the_right_secret_and_address_without_the_proxys_certificate_are_ignored_and_audited(
    portal: Portal, tmp_path: Path, presented: str | None
) -> None:
    if presented is not None:
        self_signed(tmp_path, presented)
    with _as(portal, tmp_path, presented) as sniffer:
        answer = sign_in(sniffer, "agent1", headers=portal.proxy_headers("agent1"))
    assert answer.status_code == 401
    assert _ignored(portal) == [("127.0.0.1", "proxy_certificate_wrong")]


def test_a_proxy_certificate_without_tls_on_the_node_is_refused_at_start(tmp_path: Path) -> None:
    proxy_cert, _ = self_signed(tmp_path, "proxy")
    proxy = {"proxy_secret": whole.PROXY_SECRET, "proxy_addresses": whole.PROXY_ADDRESSES}
    with pytest.raises(SettingsError, match=r"proxy_certificate_file needs tls_cert_file"):
        load_settings(data_dir=tmp_path, portal={**proxy, "proxy_certificate_file": str(proxy_cert)})
