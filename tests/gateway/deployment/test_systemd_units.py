"""The systemd units in deploy/systemd. systemd is not PID 1 on the test machines, so: ``systemd-analyze verify``
checks them offline, ``systemd-analyze security --offline`` scores them (docs/deployment.md records the figures),
and the gateway unit's own command lines (ExecStartPre, ExecStart, ExecStartPost's readiness probe) run directly,
with its Environment= and LoadCredential= acted out, as an unprivileged user like its User=."""

import os
import re
import shutil
import signal
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from certs.authority import init_authority
from tests.support.server import free_port

UNITS = Path(__file__).resolve().parents[3] / "deploy" / "systemd"
VENV = Path(__file__).resolve().parents[3] / ".venv"
NOBODY = 65534


def _installed_copy(tmp_path: Path, name: str) -> Path:
    """The unit as installed here: /opt/sohogw/.venv is this checkout's venv."""
    copy = tmp_path / name
    copy.write_text((UNITS / name).read_text().replace("/opt/sohogw/.venv", str(VENV)))
    return copy


@pytest.mark.parametrize(
    "name",
    ["sohogw.service", "sohogw-guacamole-lite.service", "sohogw-seats.slice", "sohogw-backup.service",
     "sohogw-backup.timer"],
)  # fmt: skip
def test_units_pass_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    done = subprocess.run(
        ["systemd-analyze", "verify", str(_installed_copy(tmp_path, name))], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


def test_guacamole_lite_is_stopped_and_restarted_with_the_gateway() -> None:
    """A new gateway beside an old server.js (no input reports) would end RDP seats in use at their idle timeout."""
    unit = (UNITS / "sohogw-guacamole-lite.service").read_text()
    assert re.search(r"^PartOf=sohogw\.service$", unit, re.MULTILINE)


def _exposure(*args: str) -> float:
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", *args], capture_output=True, text=True
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d)", done.stdout)
    assert found, done.stdout + done.stderr
    return float(found.group(1))


def test_security_exposure_stays_low() -> None:
    # systemd's scale: 0 = fully confined … 10 = unprotected; "OK" is below 4.5. A loosened unit raises the figure.
    assert _exposure(str(UNITS / "sohogw.service")) <= 2.0
    assert _exposure(str(UNITS / "sohogw-guacamole-lite.service")) <= 1.5
    assert _exposure(str(UNITS / "sohogw-backup.service")) <= 1.5


def test_a_seat_host_with_the_drop_in_stays_below_ok(tmp_path: Path) -> None:
    system = tmp_path / "etc" / "systemd" / "system"
    (system / "sohogw.service.d").mkdir(parents=True)
    shutil.copy(UNITS / "sohogw.service", system)
    shutil.copy(UNITS / "sohogw-seats.conf", system / "sohogw.service.d" / "seats.conf")
    exposure = _exposure(f"--root={tmp_path}", "sohogw.service")
    assert exposure > _exposure(str(UNITS / "sohogw.service"))  # the drop-in is read (root, more capabilities)
    assert exposure <= 4.0


def _service_lines(unit: Path, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.read_text().splitlines() if line.startswith(f"{key}=")]


def test_the_unit_command_lines_start_a_ready_gateway_as_an_unprivileged_user(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    unit = _installed_copy(tmp_path, "sohogw.service")
    port = free_port()
    # Outside pytest's tmp dir: that one sits in root's 0700 /tmp/pytest-of-root, which the service user cannot cross.
    root = Path(tempfile.mkdtemp(prefix="sohogw-unit-"))
    request.addfinalizer(lambda: shutil.rmtree(root, ignore_errors=True))
    state, etc, credentials = root / "var-lib-sohogw", root / "etc-sohogw", root / "credentials"
    for folder in (state, etc, credentials):
        folder.mkdir(mode=0o700)
    passphrase = "unit-test-ca-passphrase-2026"
    init_authority(state / "ca", passphrase, "Corp Example", datetime.now(UTC))
    (etc / "ca-passphrase").write_text(passphrase)
    (etc / "sohogw.toml").write_text(f'listen_host = "127.0.0.1"\nlisten_port = {port}\n[seats]\nenabled = false\n')
    # LoadCredential=NAME:PATH: systemd copies PATH to %d/NAME, owned by the service user, mode 0400.
    for spec in _service_lines(unit, "LoadCredential"):
        name, source = spec.split(":", 1)
        target = credentials / name
        shutil.copy(source.replace("/etc/sohogw", str(etc)), target)
        target.chmod(0o400)
    environment = dict(os.environ)
    for spec in _service_lines(unit, "Environment"):
        key, value = spec.split("=", 1)
        environment[key] = value.replace("%d", str(credentials)).replace("/var/lib/sohogw", str(state))
    for path in [root, state, credentials, *state.rglob("*"), *credentials.iterdir()]:
        os.chown(path, NOBODY, NOBODY)
    as_user = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--inh-caps=-all"]

    def command(key: str) -> list[str]:
        (line,) = _service_lines(unit, key)
        return line.replace(":8080/", f":{port}/").split()

    pre = subprocess.run([*as_user, *command("ExecStartPre")], env=environment, cwd=state, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert pre.returncode == 0, pre.stderr
    log = root / "server.log"
    server = subprocess.Popen([*as_user, *command("ExecStart")], env=environment, cwd=state,
                              stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        ready = subprocess.run(command("ExecStartPost"), capture_output=True, text=True, timeout=60)
        assert ready.returncode == 0, log.read_text()[-3000:]
        assert server.poll() is None
        assert Path(f"/proc/{server.pid}").stat().st_uid == NOBODY  # setpriv exec()s sohogw serve itself
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
