"""Several servers: a dead or hung first server must not stop logins; TLS is verified; sockets skip Nagle."""

import logging
import socket
import time
from collections.abc import Iterator

import pytest

from gateway.directory import errors as e
from gateway.directory import open_directory
from gateway.directory.servers import ServerList
from tests.directory import samba
from tests.directory.samba import SambaDC

pytestmark = pytest.mark.e2e


@pytest.fixture
def dead_port() -> int:
    """A loopback port nobody listens on: connect is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def hung_port() -> Iterator[int]:
    """A port that accepts TCP (kernel backlog) but never answers: the TLS handshake hangs."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


def _timed_login(samba_dc: SambaDC, servers: list[str], **overrides: object) -> tuple[float, float]:
    directory = open_directory(samba_dc.settings(servers=servers, **overrides))
    times = []
    for _ in range(2):
        started = time.perf_counter()
        assert directory.authenticate(samba.AGENT, samba.PASSWORD).sam_account_name == samba.AGENT
        times.append(time.perf_counter() - started)
    return times[0], times[1]


def test_refused_first_server_fails_over_at_once(samba_dc: SambaDC, dead_port: int) -> None:
    first, second = _timed_login(samba_dc, [f"ldaps://127.0.0.1:{dead_port}", samba_dc.ldaps_url])
    assert first < 0.5
    assert second < 0.5


def test_hung_first_server_costs_one_receive_timeout_then_is_skipped(samba_dc: SambaDC, hung_port: int) -> None:
    first, second = _timed_login(samba_dc, [f"ldaps://127.0.0.1:{hung_port}", samba_dc.ldaps_url], receive_timeout=1)
    assert 1.0 <= first < 2.0
    assert second < 0.5  # remembered as failed: tried last for dead_server_retry_after seconds


def test_no_server_answering_is_directory_unavailable(dead_port: int, samba_dc: SambaDC) -> None:
    with pytest.raises(e.DirectoryUnavailable):
        open_directory(samba_dc.settings(servers=[f"ldaps://127.0.0.1:{dead_port}"])).lookup(samba.AGENT)


def test_certificate_not_matching_the_expected_name_is_refused(samba_dc: SambaDC) -> None:
    wrong_name = samba_dc.settings(tls={"ca_file": samba_dc.ca_file, "certificate_names": ["dc9.other.test"]})
    with pytest.raises(e.DirectoryUnavailable):
        open_directory(wrong_name).authenticate(samba.AGENT, samba.PASSWORD)


def test_insecure_skip_verify_connects_and_warns(samba_dc: SambaDC, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        settings = samba_dc.settings(tls={"insecure_skip_verify": True})
    assert "verification is OFF" in caplog.text
    assert open_directory(settings).authenticate(samba.AGENT, samba.PASSWORD).sam_account_name == samba.AGENT


def test_start_tls_on_plain_ldap_port_logs_in(samba_dc: SambaDC) -> None:
    tls = {"ca_file": samba_dc.ca_file, "certificate_names": [samba.CERT_NAME], "start_tls": True}
    user = open_directory(samba_dc.settings(servers=[samba_dc.ldap_url], tls=tls)).authenticate(
        samba.AGENT, samba.PASSWORD
    )
    assert "SOHO-Agents" in {g.name for g in user.groups}


def test_connections_have_tcp_nodelay(samba_dc: SambaDC) -> None:
    conn = ServerList(samba_dc.settings()).open()
    assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    conn.unbind()
