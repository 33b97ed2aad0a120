"""The fixtures themselves: a second Samba is refused clearly, and slapd leaves nothing behind."""

import socket

import pytest

from tests.directory.samba import SambaDC, SambaUnavailable, running_samba_dc
from tests.directory.slapd import running_slapd

pytestmark = pytest.mark.e2e


def test_second_samba_dc_in_one_namespace_is_refused(samba_dc: SambaDC) -> None:
    with pytest.raises(SambaUnavailable, match="already in use"), running_samba_dc():
        pass


def test_slapd_stops_and_removes_its_files_even_when_the_test_fails() -> None:
    with pytest.raises(RuntimeError, match="test failed"), running_slapd() as server:
        root, port = server.root, server.port
        assert server.admin().bound
        raise RuntimeError("test failed")
    assert not root.exists()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
