"""A supervisor watches an agent's RDP seat from the wall: a read-only join of the live guacd connection, proven in
Chromium against the REAL guacd and xrdp — same pixels, none of the watcher's clicks or keys reach the seat, the agent
is told, and the watch is audited from start to the socket closing.
"""

import time
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Frame, Page
from sqlmodel import Session, col, select

from gateway.audit.models import AuditEvent
from gateway.clock import utcnow
from gateway.db import session_scope
from gateway.seats.models import LaunchToken
from gateway.sessions.models import HomeSession, SessionState
from gateway.supervision.models import ScreenWatch
from gateway.supervision.monitoring import end_watch
from tests.desktop_broker.test_guacamole_launch import (  # noqa: F401
    NodeServer,
    guacd,
    log_dir,
    refused,
    tap,
)
from tests.gateway.seats.conftest import SeatPortal, browser_context
from tests.gateway.seats.test_guacamole_from_portal import (  # noqa: F401
    CANVAS_PIXELS,
    SAMPLES,
    agent_connection,
    node,
    open_app,
    portal,
    rdp_host,
    seat_shows,
)
from tests.support.guacd import GuacdTap, RealGuacd
from tests.support.xrdp import RdpHost

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def agent_page(portal: SeatPortal, node: NodeServer, rdp_host: RdpHost, browser: Browser) -> Iterator[Page]:  # noqa: F811
    """agent1 opened the RDP app and sees it."""
    with portal.signed_in("agent1") as agent1:
        page, _ = open_app(portal, browser, agent1, rdp_host)
        try:
            yield page
        finally:
            page.context.close()


@pytest.fixture(scope="module")
def supervisor(portal: SeatPortal, browser: Browser) -> Iterator[BrowserContext]:  # noqa: F811
    with portal.signed_in("sup1") as sup1:
        context = browser_context(portal, browser, sup1, height=950)
        try:
            yield context
        finally:
            context.close()


def watch_from_the_wall(portal: SeatPortal, supervisor: BrowserContext) -> tuple[Page, Frame]:  # noqa: F811
    wall = supervisor.new_page()
    wall.goto(portal.base_url + "/supervision/wall")
    with supervisor.expect_page() as opened:
        wall.click("#wall-rows [data-login='agent1'] button.watch", timeout=10_000)
    watch = opened.value
    wall.close()
    frame = watch.wait_for_selector("iframe#screen").content_frame()
    assert frame is not None
    frame.wait_for_function("window.guacamoleState === 3", timeout=15_000)
    return watch, frame


def until(check: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.2)
    return False


def audit(portal: SeatPortal, prefix: str) -> list[tuple[str, str, str, str]]:  # noqa: F811
    with Session(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(col(AuditEvent.action).startswith(prefix)).order_by(col(AuditEvent.seq))
        ).all()
    return [(e.action, e.actor, e.target, e.outcome) for e in rows]


def pointer(host: RdpHost) -> bytes:
    return host.x_run(["xdotool", "getmouselocation"]).stdout  # type: ignore[no-any-return]


def test_supervisor_watches_an_rdp_seat_read_only_and_their_input_never_reaches_it(
    portal: SeatPortal,  # noqa: F811
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    rdp_host: RdpHost,  # noqa: F811
    agent_page: Page,
    supervisor: BrowserContext,
) -> None:
    mark, before = guacd.mark(), len(tap.connections)
    watches_before = len(audit(portal, "supervision.watch"))
    watch, frame = watch_from_the_wall(portal, supervisor)
    assert "agent1" in (frame.text_content("#agent") or "")
    assert rdp_host.password not in frame.content()
    assert until(lambda: frame.evaluate(CANVAS_PIXELS, SAMPLES) == agent_page.evaluate(CANVAS_PIXELS, SAMPLES), 15)
    (joined,) = [c for c in tap.since(before) if c.selector.startswith("$")]
    guacd.wait_for_log(r"joined connection .*\(2 users now present\)", since=mark)
    # The agent is told by the gateway (guacamole-lite's protocol 1.1.0 never carries guacd's own notice).
    agent_page.wait_for_selector("#watched:not([hidden])", timeout=8_000)
    assert "sup1" in (agent_page.text_content("#watched") or "")

    rdp_host.x_run(["xdotool", "mousemove", "60", "700"])
    where, screen = pointer(rdp_host), seat_shows(rdp_host)
    canvas = frame.query_selector("#screen canvas")
    assert canvas is not None
    box = canvas.bounding_box()
    assert box is not None
    watch.mouse.click(box["x"] + 700, box["y"] + 160)
    watch.keyboard.type("4711")
    watch.mouse.move(box["x"] + 20, box["y"] + 20)
    time.sleep(1.5)
    assert pointer(rdp_host) == where, "the watcher moved the seat's pointer"
    assert seat_shows(rdp_host) == screen, "the watcher's clicks or keys changed the seat"
    assert not {"mouse", "key", "clipboard"} & set(joined.opcodes_after_ready())
    assert (joined.parameters["read-only"], joined.parameters["disable-paste"]) == ("true", "true")

    stage = agent_page.query_selector("#screen canvas")
    assert stage is not None
    agent_box = stage.bounding_box()
    assert agent_box is not None
    agent_page.mouse.move(agent_box["x"] + 300, agent_box["y"] + 300)
    assert until(lambda: pointer(rdp_host) != where, 5), "the agent's own pointer did not arrive"

    watch.close()  # no "stop" pressed: the join's websocket closing ends the watch (server.js → /closed)
    assert until(lambda: audit(portal, "supervision.watch")[-1][0] == "supervision.watch.end", 5)
    assert audit(portal, "supervision.watch")[watches_before:] == [
        ("supervision.watch.start", "sup1", "agent1", "started"),
        ("supervision.watch.end", "sup1", "agent1", "ended"),
    ]
    connects = [(actor, outcome) for _, actor, _, outcome in audit(portal, "seat.connect")]
    assert ("sup1", "success") in connects
    agent_page.wait_for_selector("#watched[hidden]", state="attached", timeout=8_000)


def test_a_join_link_is_spent_once_and_dies_with_the_watch(
    portal: SeatPortal,  # noqa: F811
    node: NodeServer,  # noqa: F811
    guacd: RealGuacd,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    agent_page: Page,
    supervisor: BrowserContext,
) -> None:
    watch, frame = watch_from_the_wall(portal, supervisor)
    token = frame.eval_on_selector("#view-script", "s => s.dataset.token")
    mark, before = guacd.mark(), len(tap.connections)
    assert refused(node, token)  # spent by the watch page already
    time.sleep(0.3)
    assert guacd.new_connections(mark) == 0 and tap.since(before) == []
    watch.close()
    assert until(lambda: audit(portal, "supervision.watch")[-1][0] == "supervision.watch.end", 5)
    with httpx.Client(base_url=portal.base_url) as client:
        with Session(portal.engine) as db:
            view = db.exec(
                select(LaunchToken).where(LaunchToken.mode == "view").order_by(col(LaunchToken.created_at).desc())
            ).first()
        assert view is not None
        assert client.get("/internal/launch/alive", params={"launch_id": view.id}).json() == {"alive": False}


def test_stopping_the_watch_closes_the_join_within_one_second(
    portal: SeatPortal,  # noqa: F811
    tap: GuacdTap,  # noqa: F811
    agent_page: Page,
    supervisor: BrowserContext,
) -> None:
    """Stopped elsewhere (another tab, or the watch ended by the gateway): the join is pushed closed, not polled."""
    before = len(tap.connections)
    watch, frame = watch_from_the_wall(portal, supervisor)
    (joined,) = [c for c in tap.since(before) if c.selector.startswith("$")]
    with session_scope(portal.engine) as db:
        open_watch = db.exec(select(ScreenWatch).where(col(ScreenWatch.ended_at).is_(None))).one()
        sup1 = db.exec(
            select(HomeSession).where(HomeSession.login == "sup1", HomeSession.state == SessionState.ACTIVE)
        ).one()
        assert open_watch.id is not None
        watch_id = open_watch.id
    time.sleep(3.5)  # a whole re-read interval passes with the watch open: the join stays
    assert frame.evaluate("window.guacamoleState") == 3 and joined.open
    with session_scope(portal.engine) as db:
        end_watch(db, watch_id, sup1, now=utcnow(), source="test")
    stopped = time.monotonic()
    frame.wait_for_function("window.guacamoleState === 5", timeout=5_000)
    closed = time.monotonic() - stopped
    assert tap.wait_for(lambda: not joined.open, timeout=2)
    watch.close()
    print(f"\nwatch stopped → supervisor's join closed in {closed:.2f} s")
    assert closed <= 1.0
    assert agent_page.evaluate("window.guacamoleState") == 3  # the agent's own connection goes on
