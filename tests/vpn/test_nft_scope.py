"""The nftables scope: rendering, validation, and atomic replacement of our table only (real nft in a netns)."""

import subprocess
import threading
import time

import pytest

from gateway.vpn import nft
from gateway.vpn.scope import Destination, ScopeError, TunnelScope, disjoint_rules, seat_address
from netfilter import libnftables
from tests.vpn.netns import NetnsLab

FOREIGN = "table inet foreign {\n  chain keep { type filter hook forward priority 10; policy accept; }\n}\n"


def scope(**seats: list[Destination]) -> TunnelScope:
    return TunnelScope("wgtest0", {seat.replace("_", "."): d for seat, d in seats.items()})


def test_overlapping_destinations_become_disjoint_boxes_allowing_the_same() -> None:
    rules = disjoint_rules(
        seat_address("10.77.0.2"),
        [
            Destination("10.0.0.0/8", "tcp", 443),
            Destination("10.1.0.0/16", "tcp", (400, 500)),
            Destination("10.1.0.0/16", "tcp", 443),
            Destination("fd00::/64", "tcp", 443),
        ],
    )
    boxes = {(str(net), low, high) for _, net, low, high in rules}
    assert boxes == {("10.0.0.0/8", 443, 443), ("10.1.0.0/16", 400, 442), ("10.1.0.0/16", 444, 500)}


def test_each_seat_address_gets_only_destinations_of_its_family() -> None:
    both = (Destination("172.30.0.0/24", "tcp", 80), Destination("fd30::/64", "udp", 53))
    text = nft.render(TunnelScope("wg0", {"10.77.0.2/32": both, "fd77::2/128": both, "10.77.0.3": both[1:]}))
    chain4, chain6 = nft.scope_chain(4, both), nft.scope_chain(6, both)
    assert chain4 is not None and chain6 is not None and nft.scope_chain(4, both[1:]) is None
    assert f"10.77.0.2 : jump {chain4.name}" in text and f"fd77::2 : jump {chain6.name}" in text
    assert "10.77.0.3 : continue" in text  # nothing of its family: on to from_tunnel's drop
    assert chain4.rules == (
        "meta l4proto { tcp, udp } ip daddr . meta l4proto . th dport { 172.30.0.0/24 . tcp . 80 } accept",
    )
    assert chain6.rules == (
        "meta l4proto { tcp, udp } ip6 daddr . meta l4proto . th dport { fd30::/64 . udp . 53 } accept",
    )
    assert text.count("  chain scope") == 2


def test_seats_with_one_scope_share_its_chain_and_another_scope_gets_another() -> None:
    web, mail = (Destination("172.30.0.0/24", "tcp", 443),), (Destination("172.30.0.9", "tcp", 25),)
    chains = nft.chains_of({"10.77.0.2": web, "10.77.0.3": tuple(web), "10.77.0.4": mail, "fd77::4": mail})
    assert sorted(chains.values()) == [1, 2] and len({chain.name for chain in chains}) == 2


@pytest.mark.parametrize(
    ("seats", "message"),
    [
        ({"10.77.0.0/24": []}, "one address"),
        ({"10.77.0.2": [Destination("10.1.0.0/16", "icmp", 8)]}, "cannot have a port"),
        ({"10.77.0.2": [Destination("10.1.0.0/16", "tcp", 70000)]}, "out of range"),
        ({"10.77.0.2": [Destination("10.1.0.0/16", "gre")]}, "not tcp, udp or icmp"),  # type: ignore[arg-type]
        ({"10.77.0.2": [Destination("example.com", "tcp", 443)]}, "not a network"),
    ],
)
def test_a_bad_scope_is_refused_before_any_rule_is_written(seats: dict[str, list[Destination]], message: str) -> None:
    with pytest.raises(ScopeError, match=message):
        nft.render(TunnelScope("wg0", seats))


def test_an_interface_name_that_could_inject_rules_is_refused() -> None:
    with pytest.raises(ScopeError):
        nft.render(TunnelScope('wg0" accept; #', {}))


def test_apply_replaces_our_table_and_leaves_foreign_tables_alone(lab: NetnsLab) -> None:
    ns = lab.add("nft")
    lab.run(ns, "nft", "-f", "-", stdin=FOREIGN)
    nft.apply(scope(**{"10_77_0_2": [Destination("172.30.0.10", "tcp", 443)]}), ns)
    first = nft.listing(ns)
    assert "10.77.0.2 : jump scope4_" in first and "172.30.0.10 . tcp . 443" in first
    nft.apply(scope(**{"10_77_0_3": [Destination("172.30.0.11", "udp", 53)]}), ns)
    second = nft.listing(ns)
    assert "10.77.0.3 : jump scope4_" in second and "172.30.0.11 . udp . 53" in second
    assert "10.77.0.2" not in second and "172.30.0.10" not in second  # the old seat and its scope's chain are gone
    assert "table inet foreign" in lab.run(ns, "nft", "list", "tables").stdout
    nft.remove(ns)
    tables = lab.run(ns, "nft", "list", "tables").stdout
    assert "sohogw" not in tables and "table inet foreign" in tables


def test_a_rule_set_nft_rejects_leaves_the_loaded_one_in_place(lab: NetnsLab) -> None:
    ns = lab.add("nft")
    nft.apply(scope(**{"10_77_0_2": [Destination("172.30.0.10", "tcp", 443)]}), ns)
    before = nft.listing(ns)
    broken = nft.render(scope(**{"10_77_0_3": []})).replace("policy accept;", "policy sideways;", 1)
    with nft.Nftables(ns) as nftables, pytest.raises(nft.FirewallError, match="nft failed: Error: syntax error"):
        nftables.run(broken)
    assert nft.listing(ns) == before


def test_a_kept_context_works_in_its_own_namespace_and_answers_each_script_alone(lab: NetnsLab) -> None:
    """The reconciler keeps one libnftables context for its life: every script runs in the namespace it was made
    for (not the caller's), and each answer holds that script's output or error alone."""
    ns, elsewhere = lab.add("nft"), lab.add("other")
    with nft.Nftables(ns) as nftables:
        nftables.load(scope(**{"10_77_0_2": [Destination("172.30.0.10", "tcp", 443)]}))
        assert nftables.run("list tables") == "table inet sohogw\n"
        with pytest.raises(nft.FirewallError, match=r"nft failed: Error: .*No such file or directory"):
            nftables.run("list table inet absent")
        assert nftables.run("list tables") == "table inet sohogw\n"
        listed = nftables.run(f"list table {nft.TABLE}")
        assert "10.77.0.2 : jump scope4_" in listed and "172.30.0.10 . tcp . 443" in listed
    assert lab.run(ns, "nft", "list", "tables").stdout == "table inet sohogw\n"
    assert lab.run(elsewhere, "nft", "list", "tables").stdout == ""


def test_a_kept_context_follows_a_namespace_made_again_under_its_name(lab: NetnsLab) -> None:
    """``ip netns del NS; ip netns add NS`` makes a new namespace: the next load goes there, not to the dead one the
    context's thread was in."""
    ns = lab.add("nft")
    with nft.Nftables(ns) as nftables:
        nftables.load(scope(**{"10_77_0_2": [Destination("172.30.0.10", "tcp", 443)]}))
        subprocess.run(["ip", "netns", "del", ns], check=True)
        subprocess.run(["ip", "netns", "add", ns], check=True)
        assert lab.run(ns, "nft", "list", "tables").stdout == ""
        nftables.load(scope(**{"10_77_0_3": [Destination("172.30.0.11", "tcp", 443)]}))
        assert nftables.run("list tables") == "table inet sohogw\n"
    listed = lab.run(ns, "nft", "list", "table", "inet", "sohogw").stdout
    assert "10.77.0.3 : jump scope4_" in listed and "172.30.0.11 . tcp . 443" in listed


def test_a_script_past_its_time_gives_the_context_up_without_running_the_scripts_after_it(lab: NetnsLab) -> None:
    """A real 40,000-seat load with a timeout it cannot meet: the scripts after it fail at once instead of running
    late, and close does not wait for the load."""
    ns = lab.add("nft")
    allowed = [Destination("172.30.0.0/24", "tcp", 443)]
    big = TunnelScope("wgtest0", {f"10.77.{n // 250}.{n % 250 + 2}": allowed for n in range(40_000)})
    nftables = nft.Nftables(ns, timeout=0.001)
    with pytest.raises(nft.FirewallError, match=r"no answer within 0\.001 s"):
        nftables.load(big)
    assert nftables.wedged
    started = time.monotonic()
    with pytest.raises(nft.FirewallError, match="an earlier script did not return"):
        nftables.run(f"table {nft.TABLE}\ndelete table {nft.TABLE}\n")
    nftables.close()
    assert time.monotonic() - started < 0.1  # the load itself takes ~0.4 s here
    nftables._thread.shutdown(wait=True)  # the load ran to its end; the delete after it never ran
    count = lab.run(ns, "nft", "list", "map", "inet", "sohogw", "seats4").stdout.count(": jump scope4_")
    assert count == 40_000


class StuckLibrary:
    """A stand-in for libnftables whose script "first" does not return until ``release`` is set (as a netlink call the
    kernel does not answer); it counts the scripts run and the contexts left unfreed."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.scripts: list[bytes] = []
        self.contexts = 0

    def nft_ctx_new(self, flags: int) -> int:
        self.contexts += 1
        return self.contexts

    def nft_ctx_free(self, context: int) -> None:
        self.contexts -= 1

    def nft_ctx_buffer_output(self, context: int) -> None:
        pass

    nft_ctx_buffer_error = nft_ctx_buffer_output

    def nft_run_cmd_from_buffer(self, context: int, script: bytes) -> int:
        self.scripts.append(script)
        if script == b"first":
            self.release.wait(10)
        return 0

    def nft_ctx_get_output_buffer(self, context: int) -> bytes:
        return b""

    nft_ctx_get_error_buffer = nft_ctx_get_output_buffer


def test_a_script_that_never_returns_holds_up_no_later_script(monkeypatch: pytest.MonkeyPatch) -> None:
    """Neither this context's later scripts nor another context's (waiting for the library's lock) queue up to run
    late when the stuck one returns; close waits for none of them, and the contexts are freed in the end (the other
    one's too, made by a script before and given up while it waited for the lock)."""
    library = StuckLibrary()
    monkeypatch.setattr(libnftables, "_library", lambda: library)
    stuck, other = nft.Nftables(timeout=0.2), nft.Nftables(timeout=0.2)
    assert other.run("before") == ""
    with pytest.raises(nft.FirewallError, match=r"no answer within 0\.2 s"):
        stuck.run("first")
    started = time.monotonic()
    for _ in range(3):
        with pytest.raises(nft.FirewallError, match="an earlier script did not return"):
            stuck.run("stale")
    stuck.close()
    assert time.monotonic() - started < 0.1
    with pytest.raises(nft.FirewallError, match=r"no answer within 0\.2 s"):
        other.run("behind the lock")
    other.close()
    library.release.set()
    for nftables in (stuck, other):
        nftables._thread.shutdown(wait=True)
    assert library.scripts == [b"before", b"first"] and library.contexts == 0
    fresh = nft.Nftables(timeout=0.2)
    assert fresh.run("after") == ""
    fresh.close()


def test_ten_thousand_seats_load_as_one_transaction(lab: NetnsLab) -> None:
    ns = lab.add("nft")
    allowed = [Destination("172.30.0.0/24", "tcp", 443), Destination("172.30.0.1", "icmp")]
    seats = {f"10.77.{n // 250}.{n % 250 + 2}": allowed for n in range(10_000)}
    nft.apply(TunnelScope("wgtest0", seats), ns)
    count = lab.run(ns, "nft", "list", "map", "inet", "sohogw", "seats4").stdout.count(": jump scope4_")
    assert count == 10_000
