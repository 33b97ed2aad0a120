"""Bench: `sohogw backup` and `sohogw restore` of a PostgreSQL gateway with 10,000 certificates and 1,000,000
audit rows, beside the bare pg_dump / pg_restore of the same database measured in the same run.

A throwaway PostgreSQL server (tests/support/postgres.py) gets the migrations, a real CA, --certificates real agent
certificates issued through the service (each with its audit row), 1 % of them revoked and a CRL published; then
audit rows are appended in bulk (COPY) up to --audit-rows, each hashed by the real `event_hash` so the chain still
verifies. The backup is timed end to end (snapshot facts, pg_dump, tar, seal); the restore too (unseal, pg_restore,
the whole chain verified, register and CRL compared, CA opened). Run as root from the repo root:
    .venv/bin/python -m bench.bench_backup [--certificates 10000] [--audit-rows 1000000]
"""

import argparse
import json
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from sqlmodel import Session

from certs.authority import init_authority
from gateway.audit.models import AuditEvent, AuditHead
from gateway.audit.service import event_hash
from gateway.db import make_engine, session_scope
from gateway.deployment.backup import create_backup
from gateway.deployment.dumps import libpq_target
from gateway.deployment.restore import restore_backup
from gateway.migrate import upgrade
from gateway.pki.service import Actor, issue_agent_certificate, publication_urls, revoke
from gateway.settings import load_settings
from tests.support.postgres import create_database, running_postgres
from tests.vpn.keys import key_pair

PASSPHRASE = "bench-ca-passphrase-2026"  # noqa: S105 - a throwaway CA
BACKUP_PASSPHRASE = b"bench-backup-passphrase-2026"
ACTOR = Actor("bench", "local")


def seed_certificates(url: str, data_dir: Path, count: int) -> None:
    now = datetime.now(UTC)
    authority = init_authority(data_dir / "ca", PASSPHRASE, "Bench Corp", now)
    engine = make_engine(url)
    urls = publication_urls("https://gw.bench.example")
    serials = []
    with session_scope(engine) as db:
        for n in range(count):
            issued = issue_agent_certificate(
                db, authority, upn=f"agent{n}@bench.example", wireguard_key=key_pair()[1], person_id=None, actor=ACTOR,
                now=now,
                lifetime=timedelta(days=7), urls=urls,
            )  # fmt: skip
            serials.append(issued.row.serial)
    with session_scope(engine) as db:
        for serial in serials[::100]:  # 1 % revoked
            revoke(db, authority, serial, "keyCompromise", actor=ACTOR, now=now, crl_validity=timedelta(hours=24))
    engine.dispose()


def seed_audit_rows(url: str, total: int) -> None:
    """Append rows up to ``total`` with COPY; each row hashed by the real chain function, the head moved last."""
    engine = make_engine(url)
    with Session(engine) as db:
        head = db.get(AuditHead, 1)
        assert head is not None
        seq, previous = head.seq, head.hash
    engine.dispose()
    at = datetime.now(UTC)
    dsn, _ = libpq_target(url)
    with psycopg.connect(dsn) as connection, connection.cursor() as cursor:
        columns = "seq, at, actor, action, target, outcome, source, detail, prev_hash, hash"
        with cursor.copy(f"COPY audit_event ({columns}) FROM STDIN") as copy:
            while seq < total:
                seq += 1
                event = AuditEvent.model_construct(
                    seq=seq, at=at, actor="agent@bench.example", action="session.login", target=f"session {seq}",
                    outcome="success", source="198.51.100.7", detail='{"bench": true}', prev_hash=previous, hash="",
                )  # fmt: skip
                digest = event_hash(event)
                copy.write_row((seq, at, event.actor, event.action, event.target, event.outcome, event.source,
                                event.detail, previous, digest))  # fmt: skip
                previous = digest
        cursor.execute("UPDATE audit_head SET seq = %s, hash = %s WHERE id = 1", (seq, previous))


def timed(what: str, work):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    result = work()
    elapsed = time.perf_counter() - started
    print(f"  {what:<44} {elapsed:8.1f} s", flush=True)
    return result, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--certificates", type=int, default=10_000)
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with running_postgres() as admin, tempfile.TemporaryDirectory(prefix="bench-backup-") as work:
        folder = Path(work)
        url = create_database(admin, f"bench_{uuid.uuid4().hex[:8]}")
        upgrade(url)
        data_dir = folder / "data"
        data_dir.mkdir(mode=0o700)
        (data_dir / "ca-passphrase").write_text(PASSPHRASE)
        (data_dir / "ca-passphrase").chmod(0o600)
        print(f"seeding {args.certificates:,} certificates and {args.audit_rows:,} audit rows on PostgreSQL")
        timed("issue certificates (service, audited)", lambda: seed_certificates(url, data_dir, args.certificates))
        timed("append audit rows (COPY, chained)", lambda: seed_audit_rows(url, args.audit_rows))
        settings = load_settings(
            data_dir=data_dir, database_url=url, ca={"passphrase_file": data_dir / "ca-passphrase"}
        )

        print("baseline: the bare PostgreSQL tools on the same database")
        dsn, env = libpq_target(url)
        plain_dump = folder / "plain.pgdump"
        dump = ["pg_dump", "--format=custom", f"--file={plain_dump}", f"--dbname={dsn}"]
        _, dump_base = timed("pg_dump --format=custom", lambda: subprocess.run(dump, env=env, check=True))
        baseline_db = create_database(admin, f"bench_{uuid.uuid4().hex[:8]}")
        baseline_dsn, _ = libpq_target(baseline_db)
        _, restore_base = timed("pg_restore --single-transaction", lambda: subprocess.run(
            ["pg_restore", "--no-owner", "--single-transaction", f"--dbname={baseline_dsn}", str(plain_dump)],
            env=env, check=True))  # fmt: skip

        print("sohogw")
        archive = folder / "gw.sohogw-backup"
        made, backup_time = timed(
            "backup (snapshot, pg_dump, tar, seal)",
            lambda: create_backup(settings, archive, BACKUP_PASSPHRASE, actor="bench"),
        )
        fresh = load_settings(
            data_dir=folder / "restored", database_url=create_database(admin, f"r_{uuid.uuid4().hex[:8]}")
        )
        restored, restore_time = timed(
            "restore (unseal, pg_restore, verify, compare)",
            lambda: restore_backup(fresh, archive, BACKUP_PASSPHRASE, actor="bench"),
        )
        print(
            json.dumps(
                {
                    "certificates": made.facts.certificates,
                    "revoked": made.facts.revoked,
                    "audit_rows": made.facts.audit_rows,
                    "audit_rows_verified": restored.audit_rows_checked,
                    "pg_dump_bytes": plain_dump.stat().st_size,
                    "archive_bytes": made.size,
                    "baseline_pg_dump_s": round(dump_base, 1),
                    "backup_s": round(backup_time, 1),
                    "baseline_pg_restore_s": round(restore_base, 1),
                    "restore_s": round(restore_time, 1),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
