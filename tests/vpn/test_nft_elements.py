"""Seats' map elements written over netlink: the same table nft's own text makes, in one transaction (real nftables
in a netns)."""

import re
import subprocess
from collections.abc import Iterator

import pytest

from gateway.vpn import nft
from gateway.vpn.nft_elements import SetElements
from gateway.vpn.nft_generation import RulesetGeneration
from gateway.vpn.scope import Destination, ScopeError, TunnelScope
from tests.vpn.netns import NetnsLab

EVERY_KIND = (
    Destination("10.77.0.1/32", "tcp", 443),
    Destination("172.30.0.0/24", "tcp", 8081),
    Destination("172.31.0.0/16", "udp", (1000, 2000)),
    Destination("192.168.0.0/16", "tcp"),  # any port
    Destination("10.0.0.0/8", "icmp"),
    Destination("fd30::/64", "udp", 53),
    Destination("fd31::/48", "icmp"),
)


def scope(seats: dict[str, tuple[Destination, ...]]) -> TunnelScope:
    return TunnelScope("wgtest0", seats)


def contents(listing: str) -> tuple[dict[str, set[str]], set[str]]:
    """Each map's elements and each chain, in an ``nft list table``: nft lists elements in the order they were
    added, chains in the order they were made."""
    found = re.findall(r"map (\w+) \{[^}]*?(?:elements = \{([^}]*)\})?\s*\}", listing)
    maps = {
        name: {" ".join(element.split()) for element in elements.split(",") if element.strip()}
        for name, elements in found
    }
    return maps, set(re.findall(r"^\tchain .*?^\t\}$", listing, re.S | re.M))


def chain_of(version: int, destinations: tuple[Destination, ...]) -> nft.ScopeChain:
    chain = nft.scope_chain(version, destinations)
    assert chain is not None
    return chain


def with_chains(ns: str, seats: dict[str, tuple[Destination, ...]]) -> None:
    """Make the chains of ``seats``' scopes, as the reconciler does before it adds their elements."""
    with nft.Nftables(ns) as nftables:
        nftables.run("".join(chain.creation() for chain in nft.chains_of(seats)))


@pytest.fixture
def table(lab: NetnsLab) -> Iterator[tuple[str, SetElements]]:
    """A namespace with our table loaded empty, and an element writer for it."""
    ns = lab.add("nft")
    nft.apply(scope({}), ns)
    elements = SetElements(ns)
    yield ns, elements
    elements.close()


def test_elements_added_over_netlink_list_as_the_same_scope_loaded_as_text(table: tuple[str, SetElements]) -> None:
    ns, elements = table
    seats = {"10.77.0.2": EVERY_KIND, "fd77::2": EVERY_KIND, "10.77.0.3/32": EVERY_KIND[:1], "fd77::3/128": ()}
    with_chains(ns, seats)
    elements.change(scope({}), scope(seats))
    over_netlink = contents(nft.listing(ns))
    nft.apply(scope(seats), ns)
    assert over_netlink == contents(nft.listing(ns))
    maps, chains = over_netlink
    assert f"10.77.0.2 : jump {chain_of(4, EVERY_KIND).name}" in maps["seats4"]
    assert "fd77::3 : continue" in maps["seats6"]  # a scope with nothing of its family: on to the drop
    assert maps.keys() == set(nft.MAP_NAMES) and len(chains) == 3 + 6  # three scopes' chains, and our six
    assert any("172.31.0.0/16 . udp . 1000-2000" in chain for chain in chains)  # what is compared is there


def test_deleting_a_seat_takes_exactly_its_elements_and_the_chain_it_alone_jumped_to(
    table: tuple[str, SetElements],
) -> None:
    ns, elements = table
    seats = {"10.77.0.2": EVERY_KIND, "10.77.0.3": EVERY_KIND, "10.77.0.4": EVERY_KIND[:1], "fd77::3": EVERY_KIND}
    with_chains(ns, seats)
    elements.change(scope({}), scope(seats))
    gone = {"10.77.0.2": EVERY_KIND, "10.77.0.4": EVERY_KIND[:1], "fd77::3": EVERY_KIND}
    elements.change(scope(gone), scope({}), [chain_of(4, EVERY_KIND[:1]), chain_of(6, EVERY_KIND)])
    left = contents(nft.listing(ns))
    nft.apply(scope({"10.77.0.3": EVERY_KIND}), ns)
    assert left == contents(nft.listing(ns))


def test_a_refused_change_raises_and_changes_nothing(table: tuple[str, SetElements]) -> None:
    ns, elements = table
    with_chains(ns, {"10.77.0.2": EVERY_KIND})
    elements.change(scope({}), scope({"10.77.0.2": EVERY_KIND}))
    before = nft.listing(ns)
    with pytest.raises(nft.FirewallError, match="delete in seats4: No such file or directory"):
        elements.change(scope({"10.77.0.9": EVERY_KIND}), scope({"10.77.0.5": EVERY_KIND}))
    assert nft.listing(ns) == before
    still_jumped_to = chain_of(4, EVERY_KIND)
    with pytest.raises(nft.FirewallError, match=f"delete chain {still_jumped_to.name}: Device or resource busy"):
        elements.change(scope({}), scope({"10.77.0.5": EVERY_KIND}), [still_jumped_to])
    assert nft.listing(ns) == before
    elements.change(scope({}), scope({"10.77.0.5": EVERY_KIND}))  # the writer goes on after a refusal
    assert f"10.77.0.5 : jump {still_jumped_to.name}" in nft.listing(ns)


def test_an_element_jumping_to_a_chain_not_made_is_refused(table: tuple[str, SetElements]) -> None:
    ns, elements = table
    before = nft.listing(ns)
    with pytest.raises(nft.FirewallError, match="add in seats4: No such file or directory"):
        elements.change(scope({}), scope({"10.77.0.2": EVERY_KIND}))
    assert nft.listing(ns) == before


def test_a_bad_scope_is_refused_before_anything_is_sent(table: tuple[str, SetElements]) -> None:
    ns, elements = table
    before = nft.listing(ns)
    with pytest.raises(ScopeError, match="one address"):
        elements.change(scope({}), scope({"10.77.0.2": EVERY_KIND, "10.77.0.0/24": ()}))
    assert nft.listing(ns) == before


def test_ten_thousand_seats_go_in_one_transaction(table: tuple[str, SetElements], lab: NetnsLab) -> None:
    ns, elements = table
    allowed = (Destination("172.30.0.0/24", "tcp", 443), Destination("172.30.0.1", "icmp"))
    seats = {f"10.77.{n // 250}.{n % 250 + 2}": allowed for n in range(10_000)}
    with_chains(ns, seats)
    generation = RulesetGeneration(ns)
    before = generation.read()
    elements.change(scope({}), scope(seats))
    assert generation.read() == before + 1  # many messages, one commit
    generation.close()
    listed = lab.run(ns, "nft", "list", "map", "inet", "sohogw", "seats4").stdout
    assert listed.count(": jump scope4_") == 10_000


def test_kept_sockets_follow_a_namespace_made_again_under_its_name(table: tuple[str, SetElements]) -> None:
    """``ip netns del NS; ip netns add NS`` makes a new namespace: the next change and generation read go there, not
    to the dead one the sockets were opened in."""
    ns, elements = table
    generation = RulesetGeneration(ns)
    with_chains(ns, {"10.77.0.2": EVERY_KIND[:1]})
    for seat in ("10.77.0.2", "10.77.0.3", "10.77.0.4"):  # the dead namespace's generation runs ahead of the new one's
        elements.change(scope({}), scope({seat: EVERY_KIND[:1]}))
    generation.read()
    subprocess.run(["ip", "netns", "del", ns], check=True)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    nft.apply(scope({}), ns)
    with_chains(ns, {"10.77.0.9": EVERY_KIND[:1]})
    elements.change(scope({}), scope({"10.77.0.9": EVERY_KIND[:1]}))
    assert contents(nft.listing(ns))[0]["seats4"] == {f"10.77.0.9 : jump {chain_of(4, EVERY_KIND[:1]).name}"}
    fresh = RulesetGeneration(ns)
    assert generation.read() == fresh.read()
    generation.close()
    fresh.close()
