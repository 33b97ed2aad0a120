"""Session fixtures: one Samba AD DC and one slapd for the whole run, stopped even when tests fail."""

from collections.abc import Iterator

import pytest

from tests.directory.samba import SambaDC, running_samba_dc
from tests.directory.slapd import Slapd, running_slapd


@pytest.fixture(scope="session")
def samba_dc() -> Iterator[SambaDC]:
    with running_samba_dc() as dc:
        yield dc


@pytest.fixture(scope="session")
def slapd() -> Iterator[Slapd]:
    with running_slapd() as server:
        yield server
