"""docs/ad-example.md, followed step by step against a real Samba AD DC (LDAPS) and an AD CS-like company CA: the
doc's TOML and every `$ sohogw` line in it are run as written, with the lab's DC, base DN and service account in
place of corp.example's. The outcome the doc promises is checked: the directory check passes, the company CA is
trusted, the company's groups are found by DN, and the AD agent gets the agent role."""

import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.certs.company_ca import CompanyCa
from tests.directory import samba
from tests.directory.samba import SambaDC
from tests.gateway.deployment.conftest import run_sohogw

DOC = Path(__file__).resolve().parents[3] / "docs" / "ad-example.md"


def _lab(text: str, dc: SambaDC) -> str:
    """corp.example's values → the lab's (the doc's own words are otherwise kept)."""
    for theirs, ours in (
        ('["ldaps://dc1.corp.example:636", "ldaps://dc2.corp.example:636"]', f'["{dc.ldaps_url}"]'),
        ("DC=corp,DC=example", samba.BASE_DN),
        ("svc-sohogw@corp.example", f"{samba.SERVICE_ACCOUNT}@{samba.REALM.lower()}"),
        ("the service account's password", samba.PASSWORD),
        ('netbios_domain = "CORP"', f'netbios_domain = "{samba.NETBIOS}"'),
        ('ca_file = "/etc/sohogw/corp-root-ca.pem"',
         f'ca_file = "{dc.ca_file}"\ncertificate_names = ["{samba.CERT_NAME}"]'),
    ):  # fmt: skip
        assert theirs in text, theirs
        text = text.replace(theirs, ours)
    return text


def test_the_worked_ad_example_runs_as_written(tmp_path: Path, samba_dc: SambaDC) -> None:
    doc = DOC.read_text()
    toml = re.search(r"```toml\n(.*?)```", doc, re.S)
    assert toml is not None
    config = tmp_path / "sohogw.toml"
    config.write_text(_lab(toml.group(1), samba_dc))
    config.chmod(0o600)  # as the example says: it holds the directory's password
    company = CompanyCa.create(datetime.now(UTC))
    (tmp_path / "corp-chain.pem").write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (company.issuing, company.root))
    )
    passphrase = tmp_path / "ca-passphrase"
    passphrase.write_text("worked-example-ca-passphrase")
    passphrase.chmod(0o600)
    env = {
        "SOHOGW_CONFIG": str(config),
        "SOHOGW_DATA_DIR": str(tmp_path / "data"),
        "SOHOGW_CA__PASSPHRASE_FILE": str(passphrase),
    }
    steps = [shlex.split(line[2:]) for line in re.findall(r"^\$ sohogw .*$", doc, re.M)]
    assert [s[1] for s in steps] == ["config", "ca", "ca", "bootstrap", "policy", "serve"]
    outputs = {}
    for argv in steps[:-1]:  # all but `serve`
        done = run_sohogw(*argv[1:], env=env, cwd=tmp_path)
        outputs[" ".join(argv[1:3])] = done
        if argv[1] != "config":  # before `ca init` the check rightly fails on the missing CA
            assert done.returncode == 0, (argv, done.stdout, done.stderr)
    lines = outputs["config check"].stdout.splitlines()
    directory_line = next(line for line in lines if line.split()[1:2] == ["directory"] and "tls" not in line)
    assert directory_line.startswith("ok") and "bound as svc-sohogw@soho.test" in directory_line
    assert "trusting CN=Corp Root CA" in outputs["ca trust"].stdout
    bootstrap = outputs["bootstrap --group"].stdout
    assert f"security_admin  CN=SOHO-Security,CN=Users,{samba.BASE_DN}" in bootstrap
    assert f"agent           CN=SOHO-Agents,CN=Users,{samba.BASE_DN}" in bootstrap
    explained = outputs["policy explain"].stdout
    assert "roles: agent" in explained, explained
    exported = run_sohogw("policy", "export", env=env).stdout
    assert f"CN=SOHO-Security,CN=Users,{samba.BASE_DN}" in exported and "SOHO-SecurityAdmins" not in exported
