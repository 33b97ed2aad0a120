"""Bench: a full apply of N peers through our UAPI backend against `wg syncconf` of the same peers.

Each run gets a fresh network namespace with its own wireguard-go (the same kind of interface for both
sides), and every namespace the bench creates is deleted at the end. Run as root:
    .venv/bin/python -m bench.bench_vpn [--peers 1000 10000] [--samples 30] [--rounds 3]
"""

import argparse
import base64
import os
import secrets
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from gateway.vpn.backend import PeerSpec
from gateway.vpn.uapi import UapiBackend

PRIVATE_KEY = base64.b64encode(os.urandom(32)).decode()


def peers(count: int) -> dict[str, PeerSpec]:
    """`count` peers with random keys, one /32 and one /128 each (any 32 bytes are a usable X25519 key)."""
    specs = [
        PeerSpec.of(base64.b64encode(os.urandom(32)).decode(), [f"10.{64 + n // 65536}.{n // 256 % 256}.{n % 256}/32",
                                                               f"fd77::{n:x}/128"])
        for n in range(count)
    ]  # fmt: skip
    return {p.public_key: p for p in specs}


@contextmanager
def interface() -> Iterator[tuple[UapiBackend, str, str]]:
    """A fresh namespace with a wireguard-go interface; both removed on exit."""
    tag = secrets.token_hex(3)
    ns, name = f"sgw-bench-{tag}", f"wgb{tag}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    backend = UapiBackend(netns=ns)
    try:
        backend.ensure_interface(name, PRIVATE_KEY, 51820, ["10.64.0.1/10"])
        yield backend, name, ns
    finally:
        backend.stop()
        subprocess.run(["ip", "netns", "del", ns], check=False)


def timed(action: Callable[..., object], *args: object) -> float:
    began = time.perf_counter()
    action(*args)
    return time.perf_counter() - began


def wg(ns: str, *arguments: str) -> None:
    """`wg` inside the namespace; a failed baseline command stops the bench with its error (a baseline that did
    nothing would make any figure look good)."""
    done = subprocess.run(["ip", "netns", "exec", ns, "wg", *arguments], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"wg {' '.join(arguments)} failed: {done.stderr.strip()}")


def syncconf_file(desired: dict[str, PeerSpec]) -> str:
    lines = ["[Interface]", f"PrivateKey = {PRIVATE_KEY}", "ListenPort = 51820", ""]
    for peer in desired.values():
        lines += ["[Peer]", f"PublicKey = {peer.public_key}", f"AllowedIPs = {', '.join(sorted(peer.allowed_ips))}", ""]
    return "\n".join(lines)


def one_round(count: int) -> tuple[float, float, float, float]:
    """Apply from empty, then unchanged, through UAPI and through `wg syncconf`, each on a fresh interface."""
    desired = peers(count)
    with interface() as (backend, name, _):
        ours, ours_noop = timed(backend.apply, name, desired), timed(backend.apply, name, desired)
        assert len(backend.peers(name)) == count
    with interface() as (backend, name, ns), tempfile.NamedTemporaryFile("w", suffix=".conf") as conf:
        conf.write(syncconf_file(desired))
        conf.flush()
        theirs = timed(wg, ns, "syncconf", name, conf.name)
        assert len(backend.peers(name)) == count
        theirs_noop = timed(wg, ns, "syncconf", name, conf.name)
        assert len(backend.peers(name)) == count
    return ours, ours_noop, theirs, theirs_noop


def bench_full_apply(count: int, rounds: int) -> None:
    """Medians over `rounds`; syncconf's time includes starting `ip netns exec wg` (a few ms)."""
    ours, ours_noop, theirs, theirs_noop = zip(*(one_round(count) for _ in range(rounds)), strict=True)
    for label, uapi, syncconf in (("full apply", ours, theirs), ("unchanged", ours_noop, theirs_noop)):
        a, b = statistics.median(uapi), statistics.median(syncconf)
        print(f"{count:>6} peers  {label:<11} UAPI {a * 1000:7.1f} ms   wg syncconf {b * 1000:7.1f} ms"
              f"   syncconf/UAPI {b / a:4.2f}  (median of {rounds})")  # fmt: skip


def bench_single_peer(count: int, samples: int) -> None:
    """Latency of one peer add and remove on an interface already holding `count` peers, alternating with the
    baseline: the same add and remove by `wg set` (which includes starting `ip netns exec wg`)."""
    desired = peers(count)
    with interface() as (backend, name, ns):
        backend.apply(name, desired)
        figures: dict[str, list[float]] = {"set_peer": [], "remove_peer": [], "apply(+1)": [], "wg set": [],
                                           "wg set remove": []}  # fmt: skip
        for extra in peers(samples).values():
            figures["set_peer"].append(timed(backend.set_peer, name, extra))
            figures["remove_peer"].append(timed(backend.remove_peer, name, extra.public_key))
            allowed = ",".join(sorted(extra.allowed_ips))
            figures["wg set"].append(timed(wg, ns, "set", name, "peer", extra.public_key, "allowed-ips", allowed))
            assert extra.public_key in backend.peers(name)
            figures["wg set remove"].append(timed(wg, ns, "set", name, "peer", extra.public_key, "remove"))
            assert extra.public_key not in backend.peers(name)
            figures["apply(+1)"].append(timed(backend.apply, name, {**desired, extra.public_key: extra}))
            backend.remove_peer(name, extra.public_key)
    for label, values in figures.items():
        p50, p95 = statistics.median(values) * 1000, statistics.quantiles(values, n=20)[18] * 1000
        print(f"{count:>6} peers  {label:<13} p50 {p50:7.2f} ms   p95 {p95:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--peers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for count in args.peers:
        bench_full_apply(count, args.rounds)
    for count in args.peers:
        bench_single_peer(count, args.samples)


if __name__ == "__main__":
    main()
