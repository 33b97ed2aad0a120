"""Directory change → session ended: through the change subscription, beside the re-validation poll, same run.

Two gateways, one after the other, on one real Samba AD DC, each with its own database, portal and sessions' jobs as
the app registers them: one with the change subscription on and the poll at an hour, one (the baseline) with the
subscription off and the poll at its default 30 s. Agents sign in through the portal with their certificate; then
one agent after another is disabled or taken out of SOHO-Agents in Samba, one change every ``--spacing`` seconds, so
the changes fall at every phase of the poll's period. A change's latency is the session's ``ended_at`` minus the
moment the LDAP modify returned.

The two sides do not run at the same time: nudges are delivered to every listener in the process, so a baseline
running beside the subscription heard its ``directory.changed`` and ended its own sessions in under a second (p50
0.78 s with a 30 s poll). Each side's workers are stopped, and their listeners gone, before the next side starts.

Run as root, in a network namespace of its own (Samba needs ports 389/636):
    ip netns add bench; ip netns exec bench ip link set lo up
    ip netns exec bench .venv/bin/python -m bench.bench_directory_change [--changes 30] [--spacing 1.0]
"""

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

from certs.revocation import HttpRevocationChecker
from gateway.adoption import LegacyAdoption
from gateway.clock import as_utc, utcnow
from gateway.db import make_engine, session_scope
from gateway.directory import open_directory
from gateway.migrate import upgrade
from gateway.sessions.login import LoginServices
from gateway.sessions.models import HomeSession
from gateway.sessions.throttle import ThrottleLimits
from gateway.sessions.workers import DirectoryChanges, session_workers
from tests.directory import samba
from tests.gateway.sessions.test_revalidation_with_active_directory import AdPortal, Agent, _disable, _leave_group
from tests.support.portal import serving_portal
from tests.support.workers import running, wait_for

SUBSCRIPTION, POLL = "subscription (poll at 1 h)", "poll every 30 s (baseline)"
CHANGES: list[Callable[[samba.SambaDC, Agent], None]] = [_disable, _leave_group]


@contextmanager
def gateway(dc: samba.SambaDC, scratch: Path, watch: bool, poll_seconds: int) -> Iterator[AdPortal]:
    """A portal on its own database, with the sessions' workers running as ``create_app`` runs them."""
    scratch.mkdir()
    url = f"sqlite:///{scratch}/sohogw.db"
    upgrade(url)
    engine = make_engine(url)
    directory = open_directory(dc.settings(watch_changes=watch))
    try:
        with serving_portal(
            scratch,
            url,
            engine,
            kind=AdPortal,
            passwords={},
            groups={},
            directory=directory,
            policy=samba.policy_by_dn(),
            trusted_proxy=True,
            settings={"portal": {"revalidate_seconds": poll_seconds}},
            alongside=lambda app: nullcontext({"samba": dc}),
        ) as portal:
            services = LoginServices(
                directory, portal.authority, HttpRevocationChecker(), ThrottleLimits(), "bench", LegacyAdoption()
            )
            workers = session_workers(engine, services, portal.settings, utcnow)
            subscription = next(worker for worker in workers if isinstance(worker, DirectoryChanges))
            with running(workers, engine):
                if watch:
                    assert wait_for(lambda: subscription.watch is not None, 30), "the subscription did not start"
                    assert subscription.watch is not None and subscription.watch.subscribed.wait(30)
                yield portal
    finally:
        directory.close()
        engine.dispose()


def ended_at(portal: AdPortal, agent: Agent) -> datetime | None:
    with session_scope(portal.engine) as db:
        session = db.get(HomeSession, agent.session_id)
        return as_utc(session.ended_at) if session is not None and session.ended_at is not None else None


def quantile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def latencies_of(dc: samba.SambaDC, portal: AdPortal, changes: int, spacing: float) -> list[float]:
    """Each change's seconds from the LDAP modify's return to the session's end, on one gateway."""
    agents = [portal.agent() for _ in range(changes)]
    changed: list[tuple[Agent, datetime]] = []
    for index, agent in enumerate(agents):
        CHANGES[index % len(CHANGES)](dc, agent)
        changed.append((agent, datetime.now(UTC)))
        time.sleep(spacing)
    deadline = time.monotonic() + 60
    while any(ended_at(portal, agent) is None for agent, _ in changed) and time.monotonic() < deadline:
        time.sleep(0.2)
    ends = [(ended_at(portal, agent), at) for agent, at in changed]
    missing = sum(1 for end, _ in ends if end is None)
    assert not missing, f"{missing} sessions still live a minute after their change"
    return [(end - at).total_seconds() for end, at in ends if end is not None]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=30, help="changes per side")
    parser.add_argument("--spacing", type=float, default=1.0, help="seconds between two changes")
    args = parser.parse_args()
    sides = {SUBSCRIPTION: (True, 3600), POLL: (False, 30)}
    latencies: dict[str, list[float]] = {}
    with samba.running_samba_dc() as dc, tempfile.TemporaryDirectory() as tmp:
        for index, (name, (watch, poll_seconds)) in enumerate(sides.items()):
            with gateway(dc, Path(tmp) / str(index), watch=watch, poll_seconds=poll_seconds) as portal:
                latencies[name] = latencies_of(dc, portal, args.changes, args.spacing)
    print(f"directory change → session ended, Samba AD DC, {args.changes} changes per side, {args.spacing:g} s apart")
    for name, values in latencies.items():
        p50, p99 = quantile(values, 50), quantile(values, 99)
        print(f"  {name:<28} p50 {p50:6.2f} s   p99 {p99:6.2f} s   max {max(values):6.2f} s")


if __name__ == "__main__":
    main()
