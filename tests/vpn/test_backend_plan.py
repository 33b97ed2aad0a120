"""The reconciliation plan shared by every backend, and the UAPI wire format (no daemon needed)."""

from datetime import UTC, datetime

import pytest

from gateway.vpn.backend import PeerChanges, PeerSpec, PeerState, WireGuardError, plan_changes
from gateway.vpn.uapi_wire import hex_to_key, key_to_hex, parse_configs, parse_get, peer_lines, set_request
from tests.vpn.keys import key_pair


def answer(lines: list[str]) -> bytes:
    """A `get=1` answer's body as the socket gives it (``exchange`` has taken off the errno line)."""
    return "".join(f"{line}\n" for line in lines).encode()


def test_plan_leaves_matching_peers_alone_fixes_changed_and_removes_unknown() -> None:
    same, changed, new, stranger = (key_pair()[1] for _ in range(4))
    current = {
        same: PeerState(same, frozenset({"10.77.0.2/32"}), rx_bytes=5),
        changed: PeerState(changed, frozenset({"10.77.0.3/32", "10.77.0.9/32"})),
        stranger: PeerState(stranger, frozenset({"10.77.0.4/32"})),
    }
    desired = {
        same: PeerSpec.of(same, ["10.77.0.2"]),
        changed: PeerSpec.of(changed, ["10.77.0.3/32"]),
        new: PeerSpec.of(new, ["10.77.0.5/32", "fd77::5/128"]),
    }
    changes = plan_changes(current, desired)
    assert {p.public_key for p in changes.to_set} == {changed, new}
    assert changes.to_remove == [stranger]


def test_plan_is_empty_when_everything_matches_and_keepalive_zero_means_off() -> None:
    key = key_pair()[1]
    current = {key: PeerState(key, frozenset({"10.77.0.2/32"}), persistent_keepalive=None)}
    assert not plan_changes(current, {key: PeerSpec.of(key, ["10.77.0.2/32"], persistent_keepalive=0)})
    assert plan_changes(current, {key: PeerSpec.of(key, ["10.77.0.2/32"], persistent_keepalive=25)})


def test_keys_travel_as_hex_and_come_back_as_base64() -> None:
    public = key_pair()[1]
    hex_key = key_to_hex(public)
    assert len(hex_key) == 64 and int(hex_key, 16) >= 0
    assert hex_to_key(hex_key) == public


@pytest.mark.parametrize("bad", ["not base64!", "AAAA", ""])
def test_a_malformed_key_is_refused_before_reaching_the_daemon(bad: str) -> None:
    with pytest.raises(WireGuardError):
        key_to_hex(bad)


def test_get_answer_is_parsed_into_peers_with_handshake_and_counters() -> None:
    a, b = key_pair()[1], key_pair()[1]
    lines = [
        f"private_key={'11' * 32}",
        "listen_port=51820",
        f"public_key={key_to_hex(a)}",
        "endpoint=192.168.1.2:40000",
        "last_handshake_time_sec=1700000000",
        "last_handshake_time_nsec=5",
        "rx_bytes=10",
        "tx_bytes=20",
        "persistent_keepalive_interval=0",
        "allowed_ip=10.77.0.2/32",
        "allowed_ip=fd77::2/128",
        f"public_key={key_to_hex(b)}",
        "last_handshake_time_sec=0",
        "allowed_ip=10.77.0.3/32",
    ]
    device = parse_get(answer(lines))
    assert device.listen_port == 51820
    assert device.private_key == hex_to_key("11" * 32)
    first, second = device.peers[a], device.peers[b]
    assert first.allowed_ips == {"10.77.0.2/32", "fd77::2/128"}
    assert first.latest_handshake == datetime.fromtimestamp(1700000000, UTC)
    assert (first.rx_bytes, first.tx_bytes, first.endpoint) == (10, 20, "192.168.1.2:40000")
    assert second.latest_handshake is None and second.allowed_ips == {"10.77.0.3/32"}
    # The safety net's lean reading of the same answer: the configuration alone, and a plan from it that agrees.
    configs = parse_configs(answer([*lines, "persistent_keepalive_interval=25"]))
    assert configs == {a: PeerSpec.of(a, ["10.77.0.2/32", "fd77::2/128"]), b: PeerSpec.of(b, ["10.77.0.3/32"], 25)}
    wanted = {a: PeerSpec.of(a, ["10.77.0.2", "fd77::2"]), b: PeerSpec.of(b, ["10.77.0.3"])}
    assert plan_changes(configs, wanted) == PeerChanges(to_set=[wanted[b]])  # only b's keepalive differs


def test_a_request_says_it_has_begun_once_its_first_part_of_lines_is_sent_and_only_then() -> None:
    """A full pass starts the set elements' thread then (``InstalledTunnel._load_scope_beside_new_peers``)."""
    calls: list[str] = []
    parts = set_request((f"allowed_ip=10.77.0.{n % 250}/32" for n in range(5000)), lambda: calls.append("begun"))
    assert next(parts) == "set=1\n" and next(parts).count("\n") == 4096
    assert not calls  # the first part is made, not yet sent: exchange sends it before it asks for the next
    assert next(parts).count("\n") == 5000 - 4096 and calls == ["begun"]
    assert list(parts) == ["\n"] and calls == ["begun"]


def test_a_peer_is_written_with_replaced_allowed_ips() -> None:
    key = key_pair()[1]
    request = "".join(set_request(peer_lines(PeerSpec.of(key, ["10.77.0.2", "fd77::2/128"], 25))))
    assert request.startswith("set=1\n") and request.endswith("\n\n")
    body = request.splitlines()[1:-1]
    assert body == [
        f"public_key={key_to_hex(key)}",
        "replace_allowed_ips=true",
        "allowed_ip=10.77.0.2/32",
        "allowed_ip=fd77::2/128",
        "persistent_keepalive_interval=25",
    ]


def wireguard_go_peer(hex_key: str, handshake: int, rx: int, allowed: list[str], keepalive: int = 0) -> list[str]:
    """One peer as wireguard-go writes it: statistics first, then keepalive and the allowed IPs."""
    return [
        f"public_key={hex_key}",
        f"preshared_key={'00' * 32}",
        "protocol_version=1",
        f"last_handshake_time_sec={handshake}",
        "last_handshake_time_nsec=0",
        "tx_bytes=0",
        f"rx_bytes={rx}",
        f"persistent_keepalive_interval={keepalive}",
        *(f"allowed_ip={cidr}" for cidr in allowed),
    ]


def test_the_configuration_read_ignores_moving_counters_and_sees_every_configured_field() -> None:
    a, b = key_pair()[1], key_pair()[1]
    header = [f"private_key={'11' * 32}", "listen_port=51820"]
    before = parse_configs(
        answer([*header, *wireguard_go_peer(key_to_hex(a), 0, 0, ["10.77.0.2/32", "fd77::2/128"]),
                *wireguard_go_peer(key_to_hex(b), 0, 0, ["10.77.0.3/32"])])
    )  # fmt: skip
    assert before == {a: PeerSpec.of(a, ["10.77.0.2", "fd77::2"]), b: PeerSpec.of(b, ["10.77.0.3"])}
    traffic = parse_configs(
        answer([*header, *wireguard_go_peer(key_to_hex(b), 1700000000, 5000, ["10.77.0.3/32"]),
                *wireguard_go_peer(key_to_hex(a), 1700000001, 9000, ["10.77.0.2/32", "fd77::2/128"])])
    )  # fmt: skip
    assert traffic == before
    changed = parse_configs(
        answer([*wireguard_go_peer(key_to_hex(a), 0, 0, ["10.77.0.2/32"], keepalive=25),
                *wireguard_go_peer(key_to_hex(b), 0, 0, ["10.77.0.3/32", "10.99.0.0/16"])])
    )  # fmt: skip
    assert changed == {a: PeerSpec.of(a, ["10.77.0.2"], 25), b: PeerSpec.of(b, ["10.77.0.3", "10.99.0.0/16"])}


def test_a_peer_added_or_removed_or_written_in_another_order_is_read_as_it_is() -> None:
    a, b, c = key_pair()[1], key_pair()[1], key_pair()[1]
    two = [*wireguard_go_peer(key_to_hex(a), 0, 0, ["10.77.0.2/32"]), *wireguard_go_peer(key_to_hex(b), 0, 0, [])]
    assert parse_configs(answer(two)) == {a: PeerSpec.of(a, ["10.77.0.2"]), b: PeerSpec.of(b, [])}
    three = [*two, *wireguard_go_peer(key_to_hex(c), 5, 7, ["10.77.0.4/32"])]
    assert set(parse_configs(answer(three))) == {a, b, c}
    assert set(parse_configs(answer(three[len(two) // 2 :]))) == {b, c}
    # allowed IPs before the keepalive (another daemon's order): every line of the peer still counts
    other_order = [f"public_key={key_to_hex(c)}", "allowed_ip=10.77.0.4/32", "persistent_keepalive_interval=25"]
    assert parse_configs(answer([*two, *other_order]))[c] == PeerSpec.of(c, ["10.77.0.4"], 25)
    assert parse_configs(answer([f"public_key={key_to_hex(c)}", "allowed_ip=10.77.0.4/32"]))[c] == PeerSpec.of(
        c, ["10.77.0.4"]
    )


def test_an_answer_holding_exactly_the_expected_peers_gives_back_the_expected_mapping_itself() -> None:
    """The safety net's common case: the interface holds what the last pass installed (counters moving, peers in
    wireguard-go's random order), found without a spec per peer; the comparison is then one identity check."""
    a, b = key_pair()[1], key_pair()[1]
    expected = {a: PeerSpec.of(a, ["10.77.0.2", "fd77::2"]), b: PeerSpec.of(b, ["10.77.0.3"], 25)}
    header = [f"private_key={'11' * 32}", "listen_port=51820"]
    held = answer(
        [*header, *wireguard_go_peer(key_to_hex(b), 1700000000, 5000, ["10.77.0.3/32"], keepalive=25),
         *wireguard_go_peer(key_to_hex(a), 1700000001, 9000, ["10.77.0.2/32", "fd77::2/128"])]
    )  # fmt: skip
    assert parse_configs(held, expected) is expected
    assert parse_configs(held, dict(expected)) == expected  # another mapping of the same peers: the same answer
    assert parse_configs(answer(header), {}) == {}


@pytest.mark.parametrize(
    "peers",
    [
        pytest.param([("a", ["10.77.0.2/32", "fd77::2/128"], 0)], id="a peer removed"),
        pytest.param(
            [("a", ["10.77.0.2/32", "fd77::2/128"], 0), ("b", ["10.77.0.3/32"], 25), ("c", ["10.77.0.4/32"], 0)],
            id="a peer added",
        ),
        pytest.param([("a", ["10.77.0.2/32", "fd77::9/128"], 0), ("b", ["10.77.0.3/32"], 25)], id="an address moved"),
        pytest.param(
            [("a", ["10.77.0.2/32", "fd77::2/128", "10.99.0.0/16"], 0), ("b", ["10.77.0.3/32"], 25)],
            id="an address added",
        ),
        pytest.param([("a", ["10.77.0.2/32"], 0), ("b", ["10.77.0.3/32"], 25)], id="an address taken away"),
        pytest.param([("a", ["10.77.0.2/32", "fd77::2/128"], 0), ("b", ["10.77.0.3/32"], 0)], id="keepalive off"),
        pytest.param([("a", ["10.77.0.2/32", "fd77::2/128"], 0), ("c", ["10.77.0.3/32"], 25)], id="a key replaced"),
        pytest.param([("a", ["fd77::2/128", "10.77.0.2/32"], 0), ("b", ["10.77.0.3/32"], 25)], id="another order"),
    ],
)
def test_an_answer_that_differs_from_the_expected_peers_in_any_way_is_read_as_it_is(
    peers: list[tuple[str, list[str], int]],
) -> None:
    keys = {name: key_pair()[1] for name in "abc"}
    expected = {
        keys["a"]: PeerSpec.of(keys["a"], ["10.77.0.2", "fd77::2"]),
        keys["b"]: PeerSpec.of(keys["b"], ["10.77.0.3"], 25),
    }
    lines = [
        line
        for name, allowed, keepalive in peers
        for line in wireguard_go_peer(key_to_hex(keys[name]), 0, 0, allowed, keepalive)
    ]
    live = parse_configs(answer(lines), expected)
    assert live is not expected
    assert live == parse_configs(answer(lines))
    assert live == {keys[n]: PeerSpec.of(keys[n], allowed, keepalive or None) for n, allowed, keepalive in peers}


def test_an_address_listed_outside_a_peers_last_lines_is_not_taken_for_the_expected_peers() -> None:
    """Every allowed IP line must be one the expected peers' last lines account for: a daemon that wrote one among
    the statistics (in another order than wireguard-go's) has its answer read in full."""
    a = key_pair()[1]
    expected = {a: PeerSpec.of(a, ["10.77.0.2"])}
    stray = wireguard_go_peer(key_to_hex(a), 0, 0, ["10.77.0.2/32"])
    stray.insert(3, "allowed_ip=10.99.0.0/16")
    live = parse_configs(answer(stray), expected)
    assert live is not expected and live == {a: PeerSpec.of(a, ["10.77.0.2", "10.99.0.0/16"])}


def test_an_answer_listing_a_peer_twice_is_not_taken_for_the_expected_peers() -> None:
    """No daemon lists a key twice, but the read stays exact if one did: the keys must be the expected ones, once."""
    a, b = key_pair()[1], key_pair()[1]
    expected = {a: PeerSpec.of(a, []), b: PeerSpec.of(b, [])}
    twice = wireguard_go_peer(key_to_hex(a), 0, 0, []) * 2
    assert parse_configs(answer(twice), expected) == {a: PeerSpec.of(a, [])}
    assert parse_configs(answer([*twice, *wireguard_go_peer(key_to_hex(b), 0, 0, [])]), expected) is not expected
