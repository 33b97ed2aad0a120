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


# The bounds below are the timeouts a wrong failover would wait, made long enough (5 s, 3 s) that a login on a
# loaded machine (hundreds of milliseconds) stays far below them: what is checked is which timeouts were waited,
# not how fast the machine is (bench/bench_directory.py measures that).
CONNECT_TIMEOUT, RECEIVE_TIMEOUT = 5.0, 3


def test_refused_first_server_fails_over_at_once(samba_dc: SambaDC, dead_port: int) -> None:
    servers = [f"ldaps://127.0.0.1:{dead_port}", samba_dc.ldaps_url]
    first, second = _timed_login(samba_dc, servers, connect_timeout=CONNECT_TIMEOUT)
    assert first < CONNECT_TIMEOUT  # a refused connect is not waited out
    assert second < CONNECT_TIMEOUT


def test_hung_first_server_costs_one_receive_timeout_then_is_skipped(samba_dc: SambaDC, hung_port: int) -> None:
    servers = [f"ldaps://127.0.0.1:{hung_port}", samba_dc.ldaps_url]
    first, second = _timed_login(samba_dc, servers, receive_timeout=RECEIVE_TIMEOUT)
    assert RECEIVE_TIMEOUT <= first < 2 * RECEIVE_TIMEOUT  # one receive timeout, not two
    assert second < RECEIVE_TIMEOUT  # remembered as failed: tried last for dead_server_retry_after seconds


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
