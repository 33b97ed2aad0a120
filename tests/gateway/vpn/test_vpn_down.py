"""After the gateway stops or dies, systemd's ExecStopPost takes the WireGuard interface down (fail closed).

A kernel WireGuard link outlives the process that configured it, so its peers would keep forwarding for sessions
that end while no gateway runs. This kernel has no WireGuard module, so the interface here is wireguard-go's TUN
device with a real peer on it; the command deletes the link the same way for both, and wireguard-go exits with
its device. The command line is the unit's own, run as an unprivileged user with CAP_NET_ADMIN only, as User= and
AmbientCapabilities= run it.
"""

import os
import subprocess
import time
from pathlib import Path

from tests.vpn.keys import key_pair
from tests.vpn.netns import NetnsLab

UNIT = Path(__file__).resolve().parents[3] / "deploy" / "systemd" / "sohogw.service"
VENV = Path(__file__).resolve().parents[3] / ".venv"
NOBODY = 65534


def _stop_post_command() -> list[str]:
    (line,) = [line.split("=", 1)[1] for line in UNIT.read_text().splitlines() if line.startswith("ExecStopPost=")]
    return line.replace("/opt/sohogw/.venv", str(VENV)).split()


def _link_exists(ns: str, name: str) -> bool:
    return subprocess.run(["ip", "-n", ns, "link", "show", name], capture_output=True).returncode == 0


def test_the_units_stop_post_deletes_the_interface_with_its_peers_and_is_quiet_when_it_is_gone(tmp_path: Path) -> None:
    interface = f"wgd{os.getpid() % 100000}"
    data = tmp_path / "data"
    data.mkdir()
    os.chown(data, NOBODY, NOBODY)
    environment = {**os.environ, "SOHOGW_VPN__INTERFACE": interface, "SOHOGW_DATA_DIR": str(data)}
    as_service_user = [
        "setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
        "--inh-caps=-all,+net_admin", "--ambient-caps=-all,+net_admin",
    ]  # fmt: skip
    with NetnsLab() as lab:
        ns = lab.add("gw")
        wireguard_go = lab.spawn(ns, "wireguard-go", "-f", interface)
        deadline = time.monotonic() + 10
        while not _link_exists(ns, interface):
            assert time.monotonic() < deadline, "wireguard-go made no interface"
            time.sleep(0.1)
        _, peer_public = key_pair()
        lab.run(ns, "wg", "set", interface, "peer", peer_public, "allowed-ips", "10.77.0.2/32")
        assert peer_public in lab.run(ns, "wg", "show", interface, "peers").stdout

        down = subprocess.run(
            ["ip", "netns", "exec", ns, *as_service_user, *_stop_post_command()],
            env=environment, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert down.returncode == 0, down.stderr
        assert f"deleted interface {interface}" in down.stdout
        assert not _link_exists(ns, interface)
        wireguard_go.wait(timeout=10)  # its device gone, wireguard-go ends: nothing is left to forward

        again = subprocess.run(
            ["ip", "netns", "exec", ns, *as_service_user, *_stop_post_command()],
            env=environment, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert f"no interface {interface}" in again.stdout
