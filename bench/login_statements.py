"""What one sign-in sends to PostgreSQL, statement by statement, counted in the server's own log.

On PostgreSQL a sign-in's cost beyond the directory is mostly round trips (each some 0.2 ms of the driver's CPU,
and the server's), so this counts them where they arrive: the server logs every statement (``log_statement``,
which also shows ``BEGIN``, ``COMMIT`` and any ping of a pooled connection) while warm sign-ins run one after
another, each taking over the session of the one before, as in ``bench_login.py``. The directory is the built-in
one: its time does not matter here, only what reaches the database. Prints the statements of one sign-in grouped
by pooled connection (the session's transaction, the throttle's statements), then the count per statement over all
of them.

Run as root: .venv/bin/python -m bench.login_statements [--sign-ins 20]
"""

import argparse
import collections
import re
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.one_agent import one_agent
from gateway.db import make_engine, session_scope
from gateway.migrate import upgrade
from gateway.sessions.login import login
from tests.support.postgres import create_database, log_all_statements, running_postgres

_LOGGED = re.compile(r"^(\d+)\|LOG:  (?:statement|execute [^:]*): (.*)$")


def _statements(log: str) -> list[tuple[str, str]]:
    """(backend pid, statement's first line) of every logged statement."""
    found = []
    for line in log.splitlines():
        logged = _LOGGED.match(line)
        if logged:
            found.append((logged.group(1), logged.group(2).strip()[:100]))
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sign-ins", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        log = Path(scratch) / "postgres.log"
        with running_postgres(statement_log=log) as admin:
            url = create_database(admin, "sohogw_login_statements")
            upgrade(url)
            engine = make_engine(url)
            services, attempt = one_agent(engine, Path(scratch))

            def sign_in() -> None:
                with session_scope(engine) as db:
                    login(db, services, attempt, datetime.now(UTC))

            for _ in range(3):
                sign_in()  # warm: rows made, caches filled, the legacy-row search found nothing left
            log_all_statements(admin, on=True)
            time.sleep(1)  # each backend takes the new setting before its next statement
            start = log.stat().st_size
            for _ in range(args.sign_ins):
                sign_in()
            log_all_statements(admin, on=False)
            statements = _statements(log.read_bytes()[start:].decode(errors="replace"))
    switching = ("log_statement", "pg_reload_conf")  # the bench's own statements turning the log off
    statements = [(pid, text) for pid, text in statements if not any(word in text for word in switching)]
    print(f"{len(statements) / args.sign_ins:.1f} statements a sign-in ({len(statements)} in {args.sign_ins})")
    print("one sign-in, by pooled connection:")
    first = statements[: len(statements) // args.sign_ins]
    for pid in dict.fromkeys(pid for pid, _ in first):
        print(f"  connection {pid}: " + " | ".join(text[:40] for p, text in first if p == pid))
    print("each statement, per sign-in:")
    for text, count in collections.Counter(text for _, text in statements).most_common():
        print(f"  {count / args.sign_ins:4.1f}  {text}")


if __name__ == "__main__":
    main()
