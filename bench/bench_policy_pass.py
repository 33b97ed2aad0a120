"""What a ``policy.changed`` nudge costs one node: the full re-validation it used to run beside the policy-only pick
(``revalidation.policy_candidates``, then a full re-validation of only the sessions picked: none here) it runs now,
over N live agent sessions that all keep their right (the usual import).
SQLite, the built-in directory (a lookup is a dict read here: a real LDAP lookup makes the full pass dearer still),
no CA. Passes alternate, so both see the same machine load.

    .venv/bin/python -m bench.bench_policy_pass --sessions 300 3000 --passes 10
"""

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from certs.revocation import HttpRevocationChecker
from gateway.db import make_engine, session_scope
from gateway.directory import BuiltinDirectory, DirectorySettings, DirectoryUser
from gateway.migrate import upgrade
from gateway.sessions.revalidation import policy_candidates, revalidate
from tests.gateway.vpn.agents import agent_session


class CountingDirectory(BuiltinDirectory):
    lookups = 0

    def lookup(self, login_or_dn: str) -> DirectoryUser:
        self.lookups += 1
        return super().lookup(login_or_dn)


def measure(sessions: int, passes: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'sohogw.db'}"
        upgrade(url)
        engine = make_engine(url)
        directory = CountingDirectory(DirectorySettings(kind="builtin", builtin_file=Path(folder) / "users.json"))
        now = datetime.now(UTC)
        with session_scope(engine) as db:
            for number in range(sessions):
                login = f"agent{number}"
                directory.add_user(login, "Bench-Passw0rd!", groups=["SOHO-Agents"])
                agent_session(db, login, now)
        remote = HttpRevocationChecker(timeout_seconds=1)
        full, policy, lookups = [], [], []
        for _ in range(passes):
            started, before = time.perf_counter(), directory.lookups
            assert revalidate(engine, directory, None, remote, datetime.now(UTC)).ended == 0
            full.append(time.perf_counter() - started)
            lookups.append(directory.lookups - before)
            started, before = time.perf_counter(), directory.lookups
            assert policy_candidates(engine, datetime.now(UTC)) == []
            policy.append(time.perf_counter() - started)
            assert directory.lookups == before
        engine.dispose()
    print(
        f"{sessions} sessions: full re-validation {statistics.median(full) * 1000:.1f} ms median "
        f"({max(lookups)} lookups), policy-only {statistics.median(policy) * 1000:.1f} ms median (0 lookups)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, nargs="+", default=[300, 3000])
    parser.add_argument("--passes", type=int, default=10)
    arguments = parser.parse_args()
    for sessions in arguments.sessions:
        measure(sessions, arguments.passes)


if __name__ == "__main__":
    main()
