"""Schemathesis against the gateway's own OpenAPI description, with an agent's and a security admin's session.

The whole portal runs on a loopback socket (SQLite, or with ``--database postgres`` a PostgreSQL server the bench
starts, where text a column cannot hold fails the statement; built-in directory, our CA; the agent signs in with her
certificate through the proven proxy). Schemathesis (its CLI, from PyPI) generates requests for every operation from
the description that ``/openapi.json`` gives the security admin, and checks each answer for a server error
(``not_a_server_error``). A 503 is the gateway's documented answer for a part that is off or a dependency that is down
(here the VPN, which needs root and wireguard-go: "VPN is off"), so the bench counts 5xx other than 503 as server
errors and reports the 503s beside them. Each session also carries its CSRF token in ``X-CSRF-Token``, so the script
routes are exercised past the token check. Baseline in the same run: the same number of requests to ``GET /login``
(the cheapest page), to put the fuzzing time in proportion.

    .venv/bin/python -m bench.bench_schemathesis --max-examples 25 [--database sqlite|postgres]
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.bench_login import fresh_database
from gateway.db import make_engine
from gateway.migrate import upgrade
from gateway.sessions.deps import SESSION_COOKIE
from tests.support import portal as whole
from tests.support.portal import Portal

PASSWORDS = {"agent1": "agent-one-pw", "admin1": "admin-one-pw"}
GROUPS = {"agent1": ["SOHO-Agents"], "admin1": ["SOHO-SecurityAdmins"]}
POLICY = """\
version: 1
apps: []
roles:
  security_admin: {require_client_certificate: false}
groups:
  SOHO-Agents: {roles: [agent]}
  SOHO-SecurityAdmins: {roles: [security_admin]}
"""
"""The admin without a second factor: the bench fuzzes the API, not the TOTP enrolment."""


def _session(portal: Portal, login: str) -> tuple[str, str]:
    """Sign ``login`` in through the portal; their session cookie and CSRF token."""
    with portal.client() as client:
        headers = portal.proxy_headers(login) if login in portal.certificates else None
        answer = whole.sign_in(client, login, PASSWORDS[login], headers=headers)
        assert answer.status_code == 303, whole.page_error(answer)
        page = client.get("/security-admin" if login == "admin1" else "/agent", headers={"accept": "text/html"})
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf, page.text
        return client.cookies[SESSION_COOKIE], csrf.group(1)


def _fuzz(portal: Portal, schema: Path, cookie: str, csrf: str, max_examples: int, report: Path) -> dict[str, int]:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        str(schema),
        "--url",
        portal.base_url,
        "-H",
        f"Cookie: {SESSION_COOKIE}={cookie}",
        "-H",
        f"X-CSRF-Token: {csrf}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(max_examples),
        "--seed",
        "14",
        "--request-timeout",
        "20",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
    ]
    subprocess.run(command, check=False, capture_output=True, text=True)
    statuses: dict[str, int] = {}
    failures = 0
    for line in report.read_text().splitlines():
        event = json.loads(line)
        for name, body in event.items():
            if name == "ScenarioFinished":
                for case in (body.get("recorder") or {}).get("interactions", {}).values():
                    status = str((case.get("response") or {}).get("status_code", "none"))
                    statuses[status] = statuses.get(status, 0) + 1
                    unexpected = status.startswith("5") and status != "503"
                    failures += unexpected
                    if unexpected:
                        request = case.get("request") or {}
                        print(f"  {status} {request.get('method')} {request.get('uri')}", file=sys.stderr)
    return {
        "requests": sum(statuses.values()),
        "server_errors": failures,
        **{f"status_{k}": v for k, v in statuses.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=25, help="Schemathesis examples per operation and phase")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, fresh_database(args.database, directory) as url:
        tmp = Path(directory)
        upgrade(url)
        with whole.serving_portal(
            tmp,
            url,
            make_engine(url),
            kind=Portal,
            passwords=PASSWORDS,
            groups=GROUPS,
            certified={"agent1": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="},
            policy=POLICY,
            trusted_proxy=True,
            run_jobs=True,  # as ``sohogw serve`` runs: the seat broker, the scheduler and the reconcilers start
        ) as portal:
            sessions = {login: _session(portal, login) for login in ("agent1", "admin1")}
            described = httpx.get(
                f"{portal.base_url}/openapi.json", cookies={SESSION_COOKIE: sessions["admin1"][0]}, timeout=10
            ).raise_for_status()
            schema = tmp / "openapi.json"
            schema.write_text(described.text)
            operations = sum(len(methods) for methods in described.json()["paths"].values())
            totals, seconds = {}, {}
            for login, (cookie, csrf) in sessions.items():
                started = time.perf_counter()
                totals[login] = _fuzz(portal, schema, cookie, csrf, args.max_examples, tmp / f"{login}.ndjson")
                seconds[login] = round(time.perf_counter() - started, 1)
            started = time.perf_counter()
            with portal.client() as client:
                for _ in range(max(t["requests"] for t in totals.values())):
                    client.get("/login")
            baseline = time.perf_counter() - started
    print(f"operations in the OpenAPI description: {operations}")
    for login, total in totals.items():
        print(f"{login}: {json.dumps({**total, 'seconds': seconds[login]}, sort_keys=True)}")
    print(f"baseline: the same number of GET /login in {baseline:.1f} s")
    if any(total["server_errors"] for total in totals.values()):
        raise SystemExit("server errors found")


if __name__ == "__main__":
    main()
