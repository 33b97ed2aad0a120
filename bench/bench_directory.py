"""Logins per minute against a real Samba AD DC on this machine, with a baseline measured in the same process.

A login is what the gateway does: LDAPS connect + bind + own entry + tokenGroups (group names cached). The
baseline is a bare TCP connect + anonymous rootDSE read on port 389, so the ratio says what TLS, the bind and the
group read cost on top of merely talking to the DC. Also measured: a bind with and without TCP_NODELAY, and how
long the first login takes when the first configured server is refused or hung.

Run as root: .venv/bin/python -m bench.bench_directory [--seconds 10] [--threads 8]
"""

import argparse
import os
import socket
import statistics
import time

from ldap3 import BASE, NONE, Connection, Server

from bench.interleave import alternating_throughput, throughput
from gateway.directory import open_directory
from tests.directory import samba
from tests.directory.samba import SambaDC, running_samba_dc


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000 if len(values) > 1 else values[0] * 1000


def _bind_ms(dc: SambaDC, nodelay: bool, rounds: int = 40) -> float:
    """Median of (connect over LDAPS, then time one bind) with Nagle on or off."""
    times = []
    for _ in range(rounds):
        server = Server(dc.ldaps_url, tls=dc.tls(), get_info=NONE)
        conn = Connection(server, f"{samba.AGENT}@soho.test", samba.PASSWORD)
        conn.open()
        conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(nodelay))
        started = time.perf_counter()
        conn.bind()
        times.append(time.perf_counter() - started)
        conn.unbind()
    return statistics.median(times) * 1000


def _first_login_seconds(dc: SambaDC, first_server: str) -> float:
    directory = open_directory(dc.settings(servers=[first_server, dc.ldaps_url], receive_timeout=1))
    started = time.perf_counter()
    directory.authenticate(samba.AGENT, samba.PASSWORD)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()
    with running_samba_dc() as dc:
        directory = open_directory(dc.settings())
        directory.authenticate(samba.AGENT, samba.PASSWORD)  # warm the SID → group cache

        def baseline() -> None:
            conn = Connection(Server(dc.ldap_url, get_info=NONE), auto_bind=True)
            conn.search("", "(objectClass=*)", BASE, attributes=["namingContexts"])
            conn.unbind()

        def login() -> None:
            assert directory.authenticate(samba.AGENT, samba.PASSWORD).groups

        cpus = len(os.sched_getaffinity(0))
        print(f"CPUs: {cpus}, threads: {args.threads}, {args.seconds:.0f} s each, in 4 alternating slices")
        figures = alternating_throughput({"baseline": baseline, "login": login}, args.threads, args.seconds)
        (base_rate, base_lat), (rate, lat) = figures["baseline"], figures["login"]
        single = throughput(login, 1, args.seconds / 2)[2]
        for name, per_minute, latencies in (("baseline TCP+rootDSE", base_rate, base_lat), ("login", rate, lat)):
            p50, p99 = _pct(latencies, 50), _pct(latencies, 99)
            print(f"{name:21}: {per_minute:8.0f}/min  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
        print(f"login, one thread    : p50 {_pct(single, 50):6.1f} ms  p99 {_pct(single, 99):6.1f} ms")
        print(f"ratio login/baseline : {rate / base_rate:.2f} of the baseline rate")
        nagle, nodelay = _bind_ms(dc, nodelay=False), _bind_ms(dc, nodelay=True)
        print(f"bind alone, Nagle on : {nagle:6.1f} ms;  TCP_NODELAY: {nodelay:6.1f} ms")
        with socket.socket() as dead:
            dead.bind(("127.0.0.1", 0))
            dead_port = dead.getsockname()[1]
        refused = _first_login_seconds(dc, f"ldaps://127.0.0.1:{dead_port}")
        with socket.socket() as hung:
            hung.bind(("127.0.0.1", 0))
            hung.listen(16)
            hung_seconds = _first_login_seconds(dc, f"ldaps://127.0.0.1:{hung.getsockname()[1]}")
        print(f"first login, server 1 refused: {refused * 1000:.1f} ms; server 1 hung (receive_timeout=1): "
              f"{hung_seconds * 1000:.0f} ms")  # fmt: skip
        directory.close()


if __name__ == "__main__":
    main()
