"""Integration points for the seats domain, which the supervision wall reads but does not own.

Seats come from the seats domain's live leases (``gateway.seats.service.live_leases``; idle since the lease's
``last_activity_at``). The broker may add a finer source with ``register_seat_source`` (the display's own idle
time); what a registered source says about a session wins. ``register_screen_viewer`` gives the URL of a
view-only stream of a session's screen for one supervisor; until one is registered "watch" says why.
``register_screen_thumbnails`` gives small pictures of the screens for the wall's grid.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from gateway.clock import as_utc
from gateway.errors import Unavailable
from gateway.seats.service import live_leases
from gateway.sessions.models import HomeSession


@dataclass(frozen=True)
class SeatInfo:
    seat_id: str
    backend: str
    """``x11`` or ``guacamole``."""
    idle_since: datetime | None
    """When the agent last typed or moved the mouse on the seat; None when the backend cannot tell."""


SeatSource = Callable[[Session, Sequence[str]], Mapping[str, SeatInfo]]
"""Given live session ids, the seat of each one that holds a seat (sessions without a seat are left out)."""
ScreenThumbnails = Callable[[Session, HomeSession], bytes | None]
"""Given the agent's session, a small JPEG of the seat's screen read view-only (None when no seat here shows it)."""
ScreenViewer = Callable[[Session, HomeSession, str], str]
"""Given the agent's session and the supervisor's login, a URL that shows the seat's screen view-only.
It must hand out a credential that cannot send input (x11vnc's view-only password, guacd ``read-only``)."""

_seat_sources: list[SeatSource] = []
_screen_viewers: list[ScreenViewer] = []
_screen_thumbnails: list[ScreenThumbnails] = []


class ScreenViewingUnavailable(Unavailable):
    reason = "screen_viewing_unavailable"


def register_seat_source(source: SeatSource) -> SeatSource:
    if source not in _seat_sources:
        _seat_sources.append(source)
    return source


def unregister_seat_source(source: SeatSource) -> None:
    if source in _seat_sources:
        _seat_sources.remove(source)


def register_screen_viewer(viewer: ScreenViewer) -> ScreenViewer:
    """One viewer serves all seats: a later registration replaces the earlier one."""
    _screen_viewers[:] = [viewer]
    return viewer


def unregister_screen_viewer(viewer: ScreenViewer) -> None:
    if viewer in _screen_viewers:
        _screen_viewers.remove(viewer)


def register_screen_thumbnails(thumbnails: ScreenThumbnails) -> ScreenThumbnails:
    """One source serves all seats: a later registration replaces the earlier one."""
    _screen_thumbnails[:] = [thumbnails]
    return thumbnails


def unregister_screen_thumbnails(thumbnails: ScreenThumbnails) -> None:
    if thumbnails in _screen_thumbnails:
        _screen_thumbnails.remove(thumbnails)


def screen_thumbnail(db: Session, agent: HomeSession) -> bytes | None:
    """The agent's seat as a small picture for the screen wall, or None (no seat, or no broker offers pictures)."""
    return _screen_thumbnails[0](db, agent) if _screen_thumbnails else None


def lease_seats(db: Session, session_ids: Sequence[str]) -> dict[str, SeatInfo]:
    """The seat of each session from the seats domain's live leases (one query for all)."""
    wanted = set(session_ids)
    return {
        lease.session_id: SeatInfo(lease.seat_id, lease.backend, as_utc(lease.last_activity_at))
        for lease in live_leases(db)
        if lease.session_id in wanted
    }


def seats_of(db: Session, session_ids: Sequence[str]) -> dict[str, SeatInfo]:
    seats = lease_seats(db, session_ids)
    for source in list(_seat_sources):
        seats.update(source(db, session_ids))
    return seats


def screen_url(db: Session, agent: HomeSession, supervisor: str) -> str:
    if not _screen_viewers:
        raise ScreenViewingUnavailable(
            "no seat broker offers view-only screens on this gateway yet (supervision.sources.register_screen_viewer)"
        )
    return _screen_viewers[0](db, agent, supervisor)
