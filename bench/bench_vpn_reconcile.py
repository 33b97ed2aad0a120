"""Bench: a full VPN reconcile (DB → desired peers → scope → apply) against `wg syncconf` of the same peers,
and how soon a revoked certificate's tunnel stops carrying packets.

Reconcile: N active sessions with leases are written to a fresh SQLite database (or --database-url), and each
round gets fresh wireguard-go interfaces in their own namespaces for both sides. Revocation: the end-to-end
world of tests/gateway/vpn (real CA, sessions, controller, wireguard-go clients) measures revoke → first
failed TCP connection. Everything the bench creates is removed at the end. Run as root from the repo root:
    .venv/bin/python bench/bench_vpn_reconcile.py [--leases 1000 10000] [--rounds 3] [--revocations 5]
"""

import argparse
import base64
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.interleave import alternate
from gateway.db import make_engine, session_scope
from gateway.migrate import upgrade
from gateway.sessions.models import HomeSession, SessionState
from gateway.vpn.backend import PeerChanges, PeerSpec
from gateway.vpn.models import LeaseState, TunnelLease
from gateway.vpn.reconcile import ReconcileResult, desired_peers, reconcile
from gateway.vpn.settings import VpnSettings
from gateway.vpn.uapi import UapiBackend

PRIVATE_KEY = base64.b64encode(os.urandom(32)).decode()
SCOPE = json.dumps([["10.77.0.1/32", "tcp", 443], ["172.30.0.0/24", "tcp", 8081]])
NOW = datetime.now(UTC)


class TimedBackend(UapiBackend):
    """UapiBackend noting when each apply that removed a peer returned (to time removal inside a pass)."""

    removed_at: float | None = None

    def apply(self, name: str, desired: Mapping[str, PeerSpec]) -> PeerChanges:
        changes = super().apply(name, desired)
        if changes.to_remove and self.removed_at is None:
            self.removed_at = time.perf_counter()
        return changes


def seed(engine: Engine, count: int) -> list[str]:
    """`count` active sessions, each with a desired lease (random keys); returns the session ids."""
    sessions, leases = [], []
    for n in range(count):
        sid, key = secrets.token_hex(16), base64.b64encode(os.urandom(32)).decode()
        sessions.append(
            {"id": sid, "token_sha256": secrets.token_hex(32), "csrf_token": "x", "state": SessionState.ACTIVE,
             "login": f"agent{n}", "user_dn": f"agent{n}", "roles": "agent", "groups": "[]", "wireguard_key": key,
             "second_factor": False, "source_ip": "", "user_agent": "", "node": "", "created_at": NOW,
             "last_seen_at": NOW, "last_checked_at": NOW, "idle_timeout_seconds": 900,
             "expires_at": NOW + timedelta(hours=8)}
        )  # fmt: skip
        leases.append(
            {"session_id": sid, "login": f"agent{n}", "public_key": key,
             "ipv4": f"10.77.{(n + 2) // 256}.{(n + 2) % 256}", "ipv6": f"fd77::{n + 2:x}", "scope": SCOPE,
             "state": LeaseState.DESIRED, "created_at": NOW, "rx_bytes": 0, "tx_bytes": 0}
        )  # fmt: skip
    with session_scope(engine) as db:
        db.execute(insert(HomeSession), sessions)
        db.execute(insert(TunnelLease), leases)
    return [str(s["id"]) for s in sessions]


@contextmanager
def interface(backend_class: type[UapiBackend] = UapiBackend) -> Iterator[tuple[UapiBackend, str, str]]:
    tag = secrets.token_hex(3)
    ns, name = f"sgw-bench-{tag}", f"wgr{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    backend = backend_class(netns=ns)
    try:
        backend.ensure_interface(name, PRIVATE_KEY, 51820, ["10.64.0.1/10"])
        yield backend, name, ns
    finally:
        backend.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def syncconf(ns: str, name: str, specs: Mapping[str, PeerSpec]) -> float:
    lines = ["[Interface]", f"PrivateKey = {PRIVATE_KEY}", "ListenPort = 51820", ""]
    for peer in specs.values():
        lines += ["[Peer]", f"PublicKey = {peer.public_key}", f"AllowedIPs = {', '.join(sorted(peer.allowed_ips))}", ""]
    with tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write("\n".join(lines))
        conf.flush()
        began = time.perf_counter()
        subprocess.run(["ip", "netns", "exec", ns, "wg", "syncconf", name, conf.name], check=True)
        return time.perf_counter() - began


def one_round(engine: Engine, count: int, session_ids: list[str]) -> dict[str, float]:
    figures: dict[str, float] = {}
    with Session(engine) as db:
        began = time.perf_counter()
        specs = {p.public_key: p.spec() for p in desired_peers(db, NOW)}
        figures["db → desired"] = time.perf_counter() - began
    assert len(specs) == count
    for firewall in (False, True):
        with interface(TimedBackend) as (backend, name, ns):
            settings = VpnSettings(enabled=True, interface=name, netns=ns, firewall=firewall)
            label = "reconcile+nft" if firewall else "reconcile"
            with Session(engine) as db:
                began = time.perf_counter()
                full = reconcile(db, backend, settings, NOW)
                figures[f"{label} full"] = time.perf_counter() - began
            with Session(engine) as db:
                began = time.perf_counter()
                noop = reconcile(db, backend, settings, NOW, full)
                figures[f"{label} unchanged"] = time.perf_counter() - began
            assert len(backend.peers(name)) == count and not noop.changes
            if firewall:
                figures["end → peer removed"], figures["end → pass done"] = end_one(engine, backend, settings, full,
                                                                                      session_ids)  # fmt: skip
    with interface() as (backend, name, ns):
        figures["syncconf full"] = syncconf(ns, name, specs)
        figures["syncconf unchanged"] = syncconf(ns, name, specs)
    return figures


def end_one(
    engine: Engine, backend: UapiBackend, settings: VpnSettings, previous: ReconcileResult, session_ids: list[str]
) -> tuple[float, float]:
    """End one session, then one pass: when its peer was gone, and when the pass (with the nft reload) ended."""
    victim = secrets.choice(session_ids)
    with session_scope(engine) as db:
        db.get_one(HomeSession, victim).state = SessionState.ENDED
    assert isinstance(backend, TimedBackend)
    backend.removed_at = None
    began = time.perf_counter()
    with Session(engine) as db:
        reconcile(db, backend, settings, NOW, previous)
    done = time.perf_counter()
    with session_scope(engine) as db:
        db.get_one(HomeSession, victim).state = SessionState.ACTIVE
    assert backend.removed_at is not None
    return backend.removed_at - began, done - began


def bench_reconcile(counts: list[int], rounds: int, database_url: str | None) -> None:
    print("Full reconcile vs wg syncconf (medians; syncconf includes starting `ip netns exec wg`)")
    for count in counts:
        with tempfile.TemporaryDirectory() as tmp:
            url = database_url or f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            engine = make_engine(url)
            ids = seed(engine, count)
            results = [one_round(engine, count, ids) for _ in range(rounds)]
            engine.dispose()
        median = {key: statistics.median(r[key] for r in results) for key in results[0]}
        print(f"\n{count} leases:")
        for key, value in median.items():
            print(f"  {key:24s} {value * 1000:9.1f} ms")
        print(f"  ratio reconcile / syncconf      full {median['reconcile full'] / median['syncconf full']:.2f}  "
              f"unchanged {median['reconcile unchanged'] / median['syncconf unchanged']:.2f}")  # fmt: skip


def bench_revocation(samples: int) -> None:
    """revoke → first failed probe through a real tunnel, `samples` times (see tests/gateway/vpn/world.py),
    alternating with the baseline: the same peer removed by hand with `wg set … remove` (the floor: no database,
    no re-validation, no reconcile)."""
    from certs.revocation import HttpRevocationChecker
    from gateway.pki.service import Actor, revoke
    from gateway.sessions.revalidation import revalidate
    from tests.gateway.vpn.test_vpn_e2e import PROBER
    from tests.gateway.vpn.world import PORTAL, VpnWorld, running_world
    from tests.vpn.netns import NetnsLab

    def cut(world: VpnWorld, by_hand: bool) -> float:
        world.end_all()
        home = world.homes["home1"]
        session = world.sign_in(home)
        assert world.reaches_within(home.ns, PORTAL, 10)
        prober = world.lab.spawn(home.ns, sys.executable, "-c", PROBER, PORTAL[0], str(PORTAL[1]))
        assert prober.stdout is not None and prober.stdout.readline().strip() == b"ready"
        cut_at, now = time.monotonic(), datetime.now(UTC)
        if by_hand:
            world.lab.run(world.gw, "wg", "set", world.settings.interface, "peer", home.public_key, "remove")
        else:
            with session_scope(world.engine) as db:
                revoke(db, world.authority, session.cert_serial or "", "keyCompromise", actor=Actor("bench"),
                       now=now, crl_validity=timedelta(hours=1))  # fmt: skip
            revalidate(world.engine, world.directory, world.authority, HttpRevocationChecker(), now)
        return float(prober.stdout.readline().split()[0]) - cut_at

    with tempfile.TemporaryDirectory() as tmp, NetnsLab() as lab:
        template = Path(tmp) / "template.db"
        upgrade(f"sqlite:///{template}")
        with running_world(lab, Path(tmp), template) as world:
            delays = alternate(
                {"baseline: wg set … remove": lambda: cut(world, by_hand=True), "revoke": lambda: cut(world, False)},
                samples,
            )
    print("\nfirst failed probe after the cut (ms; revoke includes the revoke and re-validation transactions):")
    for label, values in delays.items():
        shown = ", ".join(f"{d * 1000:.0f}" for d in values)
        print(
            f"  {label:26} {shown}   median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leases", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--revocations", type=int, default=5)
    parser.add_argument("--database-url", default=None, help="an empty database to use instead of a temp SQLite")
    args = parser.parse_args()
    bench_reconcile(args.leases, args.rounds, args.database_url)
    if args.revocations:
        bench_revocation(args.revocations)


if __name__ == "__main__":
    main()
