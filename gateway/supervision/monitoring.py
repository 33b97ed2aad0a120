"""View-only screen monitoring: a supervisor watches an agent's seat; every watch is audited at start and end.

Whether the agent is told follows the agent's effective policy (``notify_agent_when_watched``); a group whose
policy forbids viewing (``view_only_supervision`` false) cannot be watched at all. The pixels come from the seats
domain through the app's `ScreenViewer` (``app.state.screen_viewer``, given to `create_app`; by default the seat
broker's, `viewing.seat_broker_viewer`), which must hand out a view-only credential. The wall's grid of pictures
is watching too (``grid_picture``, pictures from ``app.state.screen_thumbnails``): one grid watch per supervisor and
seat, open while the grid keeps asking.
"""

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import as_utc
from gateway.errors import Forbidden, NotFound
from gateway.events import nudge_after_commit
from gateway.policies.service import effective_policy
from gateway.seats.endings import VIEW_ENDED
from gateway.sessions.models import HomeSession
from gateway.sessions.service import policy_groups
from gateway.supervision.errors import NoPicture
from gateway.supervision.models import ScreenWatch
from gateway.supervision.scope import agent_for_supervisor
from policy import EffectivePolicy

ScreenViewer = Callable[[Session, HomeSession, str], str]
"""Given the agent's session and the supervisor's login, a URL that shows the seat's screen view-only.
It must hand out a credential that cannot send input (x11vnc's view-only password, guacd ``read-only``)."""
ScreenThumbnails = Callable[[Session, HomeSession], bytes | None]
"""Given the agent's session, a small JPEG of the seat's screen read view-only (None when no seat here shows it)."""
GRID_SEEN_STEP = timedelta(seconds=5)
"""A grid watch's ``seen_at`` is written at most this often (the grid asks every few seconds per seat)."""
GRID_WATCH_LAPSE = timedelta(seconds=20)
"""A grid watch not asked for this long is over."""


def start_watch(
    db: Session, supervisor: HomeSession, session_id: str, *, viewer: ScreenViewer, now: datetime, source: str
) -> tuple[ScreenWatch, str]:
    """Open a watch of the agent's live session; returns it and the URL of the view-only stream.

    An agent out of the supervisor's team scope is refused as if not logged in (`AgentNotInScope`, audited)."""
    agent = agent_for_supervisor(db, supervisor, session_id, source=source, clock=lambda: now)
    policy = _allowed_policy(db, supervisor, agent, now=now, source=source, grid=False)
    url = viewer(db, agent, supervisor.login)
    return _open_watch(db, supervisor, agent, policy, now=now, source=source, grid=False), url


def _allowed_policy(
    db: Session, supervisor: HomeSession, agent: HomeSession, *, now: datetime, source: str, grid: bool
) -> EffectivePolicy:
    """The agent's effective policy when it allows viewing; else `Forbidden`, the refusal audited."""
    policy = effective_policy(db, policy_groups(agent), now)
    if not policy.view_only_supervision:
        grid_detail = {"grid": True} if grid else {}
        record(
            db,
            actor=supervisor.login,
            source=source,
            action="supervision.watch.start",
            outcome="refused_by_policy",
            target=agent.login,
            detail={"session": agent.id, **grid_detail, "why": policy.explain("view_only_supervision")},
        )
        raise Forbidden(f"policy does not allow watching {agent.login}'s screen")
    return policy


def _open_watch(
    db: Session,
    supervisor: HomeSession,
    agent: HomeSession,
    policy: EffectivePolicy,
    *,
    now: datetime,
    source: str,
    grid: bool,
) -> ScreenWatch:
    """A new watch (full or grid) of the agent's session, on the agent's node, audited ``supervision.watch.start``."""
    watch = ScreenWatch(
        supervisor=supervisor.login,
        session_id=agent.id,
        login=agent.login,
        node=agent.node,
        agent_told=policy.notify_agent_when_watched,
        started_at=now,
        grid=grid,
        seen_at=now if grid else None,
    )
    db.add(watch)
    db.flush()
    grid_detail = {"grid": True} if grid else {}
    record(
        db,
        actor=supervisor.login,
        source=source,
        action="supervision.watch.start",
        outcome="started",
        target=agent.login,
        detail={"watch": watch.id, "session": agent.id, "agent_told": watch.agent_told, **grid_detail},
    )
    return watch


def end_watch(db: Session, watch_id: int, supervisor: HomeSession, *, now: datetime, source: str) -> ScreenWatch:
    watch = db.get(ScreenWatch, watch_id)
    if watch is None or watch.supervisor != supervisor.login:
        raise NotFound(f"you have no watch {watch_id}")
    if watch.ended_at is None:
        watch.ended_at = now
        db.add(watch)
        db.flush()
        record(
            db,
            actor=supervisor.login,
            source=source,
            action="supervision.watch.end",
            outcome="ended",
            target=watch.login,
            detail={"watch": watch.id, "session": watch.session_id},
        )
        nudge_after_commit(db, VIEW_ENDED, watch.id)
    return watch


def watchers_told(db: Session, session_id: str) -> list[str]:
    """Supervisors watching this session whom the agent is told about."""
    query = select(ScreenWatch.supervisor).where(
        ScreenWatch.session_id == session_id, col(ScreenWatch.ended_at).is_(None), col(ScreenWatch.agent_told)
    )
    return sorted(set(db.exec(query).all()))


def grid_picture(
    db: Session,
    supervisor: HomeSession,
    agent: HomeSession,
    *,
    thumbnails: ScreenThumbnails,
    now: datetime,
    source: str,
) -> bytes:
    """The agent's seat as a small picture for the supervisor's screen wall, under an open grid watch.

    Showing a screen in the grid is watching it: the policy must allow viewing (else `Forbidden`, audited), the
    first picture opens a `ScreenWatch` with ``grid`` (audited ``supervision.watch.start``, the agent told as for a
    watch), and the alert job ends it once the grid has stopped asking for ``GRID_WATCH_LAPSE``.
    """
    policy = _allowed_policy(db, supervisor, agent, now=now, source=source, grid=True)
    picture = thumbnails(db, agent)
    if picture is None:
        raise NoPicture(f"no seat of {agent.login} shows a picture on this gateway node right now")
    query = select(ScreenWatch).where(
        ScreenWatch.supervisor == supervisor.login,
        ScreenWatch.session_id == agent.id,
        col(ScreenWatch.grid),
        col(ScreenWatch.ended_at).is_(None),
    )
    watch = db.exec(query).first()
    if watch is None:
        _open_watch(db, supervisor, agent, policy, now=now, source=source, grid=True)
    elif watch.seen_at is None or now - as_utc(watch.seen_at) >= GRID_SEEN_STEP:
        watch.seen_at = now
        db.add(watch)
        db.flush()
    return picture


def end_lapsed_grid_watches(db: Session, now: datetime) -> int:
    """End the grid watches whose grid stopped asking (page closed, supervisor gone); audited. Returns how many."""
    query = select(ScreenWatch).where(col(ScreenWatch.grid), col(ScreenWatch.ended_at).is_(None))
    lapsed = [w for w in db.exec(query).all() if w.seen_at is None or now - as_utc(w.seen_at) > GRID_WATCH_LAPSE]
    for watch in lapsed:
        watch.ended_at = now
        db.add(watch)
        db.flush()
        record(
            db,
            actor=watch.supervisor,
            action="supervision.watch.end",
            outcome="lapsed",
            target=watch.login,
            detail={"watch": watch.id, "session": watch.session_id, "grid": True},
            clock=lambda: now,
        )
    return len(lapsed)
