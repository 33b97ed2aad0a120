"""Two nodes behind a real HAProxy running deploy/haproxy/haproxy.cfg as shipped: browsers land on both nodes and
stay on theirs, a link naming a node reaches it, the node believes HAProxy (its secret, its address and the client
certificate it presents on its TLS hop to the node) with a browser's certificate forwarded while it ignores the same
headers sent past it, a drained node keeps its browsers but
gets no new ones, and a node killed outright is out of the balance within seconds, its browsers sent to the other."""

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from tests.gateway.nodes.cluster import (
    Cluster,
    balancer,
    cluster,
    haproxy_admin,
    self_signed,
    server_states,
    wait_until,
)
from tests.support.components import require_programs
from tests.support.portal import PROXY_SECRET

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


@pytest.fixture
def balanced(pg_url: str, tmp_path: Path) -> Iterator[tuple[Cluster, str, Path]]:
    """Nodes a and b behind HAProxy (its servers named as the nodes): the cluster, HAProxy's URL, its admin socket."""
    require_programs("haproxy", install="Debian: apt-get install haproxy")
    with cluster(pg_url, tmp_path, 0.5, 3.0) as nodes:
        nodes.behind_haproxy()
        for name in ("a", "b"):
            nodes.start(name)
        with balancer(nodes, tmp_path, PROXY_SECRET) as (url, admin):
            yield nodes, url, admin


def _node_of(client: httpx.Client, url: str) -> str:
    return str(client.get(url + "/healthz").json()["node"])


def test_browsers_land_on_both_nodes_and_stay_on_theirs(balanced: tuple[Cluster, str, Path]) -> None:
    _, url, _ = balanced
    first_visits = set()
    for _ in range(8):
        with httpx.Client(verify=False) as fresh_browser:  # noqa: S501 - the test's own self-signed portal
            first_visits.add(_node_of(fresh_browser, url))
    assert first_visits == {"a", "b"}
    with httpx.Client(verify=False) as browser:  # noqa: S501
        home = _node_of(browser, url)
        assert {_node_of(browser, url) for _ in range(10)} == {home}


def test_a_link_naming_a_node_reaches_that_node_whatever_the_browsers_cookie_says(
    balanced: tuple[Cluster, str, Path],
) -> None:
    _, url, _ = balanced
    with httpx.Client(verify=False) as browser:  # noqa: S501
        home = _node_of(browser, url)
        other = "b" if home == "a" else "a"
        assert browser.get(url + f"/healthz?node={other}").json()["node"] == other  # a watch of a seat there
        assert _node_of(browser, url) == home  # and the browser's own requests stay home


def test_the_node_believes_haproxy_and_ignores_the_same_headers_sent_past_it(
    balanced: tuple[Cluster, str, Path], pg_engine: Engine, tmp_path: Path
) -> None:
    nodes, url, _ = balanced

    def ignored() -> set[tuple[str, str]]:
        with Session(pg_engine) as db:
            rows = db.exec(select(AuditEvent).where(AuditEvent.action == "proxy.forwarding_ignored")).all()
            return {(row.source, row.outcome) for row in rows}

    certificate = self_signed(tmp_path, "agent")
    with httpx.Client(verify=False, cert=(str(certificate[0]), str(certificate[1]))) as browser:  # noqa: S501
        assert browser.get(url + "/healthz").status_code == 200
    assert ignored() == set()  # HAProxy's forwarding was believed: nothing refused
    # the controls, straight to a node: the same headers without HAProxy's secret; with it (were it ever learnt) from
    # an address that is not HAProxy's; and with it from HAProxy's address but without HAProxy's client certificate.
    # Each is ignored and audited.
    node = nodes.nodes["a"].url + "/healthz"
    forged = {"X-SSL-Client-Cert": "forged", "X-Forwarded-For": "203.0.113.9"}
    replayed = {**forged, "X-Sohogw-Proxy-Secret": PROXY_SECRET}
    with httpx.Client(verify=False) as local_process:  # noqa: S501 - the test's own self-signed node
        assert local_process.get(node, headers=forged).status_code == 200
        assert local_process.get(node, headers=replayed).status_code == 200
    elsewhere = httpx.HTTPTransport(local_address="127.0.0.2", verify=False)
    with httpx.Client(transport=elsewhere) as sniffer:
        assert sniffer.get(node, headers=replayed).status_code == 200
    assert ignored() == {
        ("127.0.0.1", "proxy_secret_missing"),
        ("127.0.0.1", "proxy_certificate_wrong"),
        ("127.0.0.2", "proxy_address_not_allowed"),
    }


def test_a_drained_node_keeps_its_browsers_and_a_killed_node_is_out_within_seconds(
    balanced: tuple[Cluster, str, Path],
) -> None:
    nodes, url, admin = balanced
    with httpx.Client(verify=False) as on_b:  # noqa: S501
        while _node_of(on_b, url) != "b":
            on_b.cookies.clear()
        haproxy_admin(admin, "set server gateways/b state drain")
        for _ in range(6):
            with httpx.Client(verify=False) as fresh_browser:  # noqa: S501
                assert _node_of(fresh_browser, url) == "a"
        assert {_node_of(on_b, url) for _ in range(5)} == {"b"}  # its own browser still reaches the drained node
        haproxy_admin(admin, "set server gateways/b state ready")

        with httpx.Client(verify=False) as on_a:  # noqa: S501
            while _node_of(on_a, url) != "a":
                on_a.cookies.clear()
            killed_at = time.monotonic()
            nodes.nodes["a"].kill_whole_tree()
            assert wait_until(lambda: server_states(admin)["a"] == "DOWN", 5)
            assert _node_of(on_a, url) == "b"  # its cookie names a dead node: sent to the live one
            assert time.monotonic() - killed_at < 5
