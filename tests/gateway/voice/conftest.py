"""Shared pieces of the voice tests: settings, an agent with a confirmed number, the ARI stand-in and the adapter."""

import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlmodel import Session

from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import open_session
from gateway.voice.ari import AriPlatform
from gateway.voice.numbers import add_number, confirm_number
from gateway.voice.settings import AriSettings, VoiceSettings
from tests.gateway.voice.ari_standin import AriStandIn
from tests.support.server import serving

ARI_USER, ARI_PASSWORD, ARI_APP = "sohogw", "ari-test-password", "sohogw-test"
AGENT_NUMBER = "+8613812345678"


class TextedCodes:
    """An in-process SMS sender for registry tests; the real HTTP adapter has its own tests against a server."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, to: str, text: str, key: str | None = None) -> None:
        self.sent.append((to, text))

    def last_code(self) -> str:
        match = re.search(r"code is (\d+)", self.sent[-1][1])
        assert match is not None
        return match.group(1)


def person_of(login: str) -> str:
    """The directory id the sessions these tests build give the account ``login``."""
    return f"test:{login}"


def new_session(login: str, now: datetime) -> HomeSession:
    """An active home session as a successful login leaves it (``open_session`` gives it its id and token)."""
    return HomeSession(
        state=SessionState.ACTIVE,
        person_id=person_of(login),
        login=login,
        user_dn=f"CN={login},DC=example",
        created_at=now,
        last_seen_at=now,
        last_checked_at=now,
        idle_timeout_seconds=3600,
        expires_at=now + timedelta(hours=8),
        roles="agent",
    )  # type: ignore[call-arg]


def start_session(db: Session, login: str, now: datetime) -> HomeSession:
    session = new_session(login, now)
    open_session(db, session)
    return session


def confirmed_number(
    db: Session, login: str, number: str, settings: VoiceSettings, now: datetime, *, person_id: str | None = None
) -> int:
    """``number`` confirmed by its texted code for ``login``'s person (the one ``new_session`` gives, unless the
    session came from a real directory: then its ``person_id``)."""
    person = person_id or person_of(login)
    texts = TextedCodes()
    added = add_number(db, person, login, number, settings, texts, actor=login, now=now)
    assert added.id is not None
    confirm_number(db, person, added.id, texts.last_code(), settings, actor=login, now=now)
    return added.id


def wait_for(check: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(step)


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


@pytest.fixture
def voice_settings() -> VoiceSettings:
    return VoiceSettings(
        platform="ari",
        ari=AriSettings(
            url="http://127.0.0.1:1",
            username=ARI_USER,
            password=SecretStr(ARI_PASSWORD),
            application=ARI_APP,
            reconnect_max_seconds=0.5,
        ),
        redial_backoff_seconds=[0.0, 0.1],
        max_dial_attempts=3,
    )


@pytest.fixture
def ari_standin() -> Iterator[tuple[AriStandIn, str]]:
    standin = AriStandIn(ARI_USER, ARI_PASSWORD, ARI_APP)
    with serving(standin.app) as url:
        try:
            yield standin, url
        finally:
            standin.refuse_websockets = True
            if standin.loop is not None:
                standin.lose_websockets()


@pytest.fixture
def ari_platform(ari_standin: tuple[AriStandIn, str], voice_settings: VoiceSettings) -> Iterator[AriPlatform]:
    _standin, url = ari_standin
    voice_settings.ari.url = url
    platform = AriPlatform(voice_settings.ari)
    try:
        yield platform
    finally:
        platform.stop()
