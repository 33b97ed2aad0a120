"""Files the CLI writes: a private key is born owner-only, and never lands in a file someone opened beforehand."""

import stat
from pathlib import Path

from tests.gateway.pki.conftest import Pki


def test_server_key_is_made_with_its_final_mode_not_written_into_a_prepared_file(
    pki: Pki,
    run,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    prepared = tmp_path / "portal.key"
    prepared.touch()
    prepared.chmod(0o666)  # another local user made it in advance, world-readable, and keeps it open
    with prepared.open("rb") as watcher:
        result = run(
            "cert", "issue", "--kind", "server", "--dns", "portal.corp.example", "--out", str(tmp_path / "portal")
        )
        assert result.exit_code == 0, result.output
        assert watcher.read() == b""
    assert b"PRIVATE KEY" in prepared.read_bytes()
    assert stat.S_IMODE(prepared.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "portal.crt").stat().st_mode) == 0o644
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".portal")]
