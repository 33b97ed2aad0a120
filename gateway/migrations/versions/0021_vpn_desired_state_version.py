"""the VPN's desired-state version per node, bumped by triggers

A safety-net pass of ``vpn.peers`` reads one small table instead of every live lease when nothing it is made of
changed: ``vpn_desired_version`` holds a counter per node, raised in the same transaction as any insert, delete or
change of a tunnel lease's peer columns, and of a home session's state, times, key or node (see
``gateway.vpn.models.DesiredStateVersion``). Triggers, not the services, so that no write path can forget it.

SQLite runs the triggers at once (its writers take one lock anyway). PostgreSQL runs them at commit (constraint
triggers, deferred), each first taking the transaction-scoped advisory lock 'sohogw.vpn_desired_version' (as
``gateway.db.serialize_on`` does): bumping transactions queue there for the moment of their commit instead of holding
node rows while they wait for other locks (the audit chain's), so they cannot deadlock. Readers are not held, and
neither is autovacuum (a lock of the table itself would have made commits wait for it).

A later migration that rebuilds home_session or vpn_tunnel_lease on SQLite (batch mode copies the table) must create
the triggers again.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LEASE_COLUMNS = ("session_id", "public_key", "ipv4", "ipv6", "scope", "state", "node")
SESSION_COLUMNS = ("state", "expires_at", "cert_not_after", "wireguard_key", "node")


def _changed(columns: Sequence[str], differ: str) -> str:
    return " OR ".join(f"OLD.{column} {differ} NEW.{column}" for column in columns)


def _sqlite_bump(node: str, source: str = "") -> str:
    # The SELECT form takes the nodes of a session's leases; ``WHERE true`` keeps SQLite from reading ON CONFLICT
    # as a join's constraint.
    select = f"SELECT {node}, 1 {source}" if source else f"SELECT {node}, 1 WHERE true"
    return (
        f"INSERT INTO vpn_desired_version (node, version) {select} "
        "ON CONFLICT (node) DO UPDATE SET version = version + 1;"
    )


SESSION_LEASE_NODES = "FROM vpn_tunnel_lease WHERE session_id = NEW.id"

SQLITE_TRIGGERS = {
    "vpn_desired_version_lease_insert": (
        "AFTER INSERT ON vpn_tunnel_lease",
        _sqlite_bump("coalesce(NEW.node, '')"),
    ),
    "vpn_desired_version_lease_delete": (
        "AFTER DELETE ON vpn_tunnel_lease",
        _sqlite_bump("coalesce(OLD.node, '')"),
    ),
    "vpn_desired_version_lease_update": (
        f"AFTER UPDATE ON vpn_tunnel_lease WHEN {_changed(LEASE_COLUMNS, 'IS NOT')}",
        _sqlite_bump("coalesce(OLD.node, '')") + _sqlite_bump("coalesce(NEW.node, '')"),
    ),
    "vpn_desired_version_session_insert": (
        "AFTER INSERT ON home_session WHEN NEW.wireguard_key IS NOT NULL",
        _sqlite_bump("NEW.node"),
    ),
    "vpn_desired_version_session_update": (
        f"AFTER UPDATE ON home_session WHEN {_changed(SESSION_COLUMNS, 'IS NOT')}",
        _sqlite_bump("OLD.node") + _sqlite_bump("NEW.node") + _sqlite_bump("coalesce(node, '')", SESSION_LEASE_NODES),
    ),
}

POSTGRES_FUNCTION = f"""
CREATE FUNCTION vpn_desired_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    nodes text[] := ARRAY[]::text[];
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('sohogw.vpn_desired_version'));
    IF TG_TABLE_NAME = 'vpn_tunnel_lease' THEN
        IF TG_OP <> 'INSERT' THEN nodes := nodes || coalesce(OLD.node, '')::text; END IF;
        IF TG_OP <> 'DELETE' THEN nodes := nodes || coalesce(NEW.node, '')::text; END IF;
    ELSE
        nodes := nodes || NEW.node::text || ARRAY(SELECT coalesce(node, '')::text {SESSION_LEASE_NODES});
        IF TG_OP = 'UPDATE' THEN nodes := nodes || OLD.node::text; END IF;
    END IF;
    INSERT INTO vpn_desired_version AS known (node, version) SELECT DISTINCT unnest(nodes), 1
        ON CONFLICT (node) DO UPDATE SET version = known.version + 1;
    RETURN NULL;
END $$
"""

POSTGRES_TRIGGERS = {  # name: (events, table, condition)
    "vpn_desired_version_lease_insert_delete": ("INSERT OR DELETE", "vpn_tunnel_lease", None),
    "vpn_desired_version_lease_update": ("UPDATE", "vpn_tunnel_lease", _changed(LEASE_COLUMNS, "IS DISTINCT FROM")),
    "vpn_desired_version_session_insert": ("INSERT", "home_session", "NEW.wireguard_key IS NOT NULL"),
    "vpn_desired_version_session_update": ("UPDATE", "home_session", _changed(SESSION_COLUMNS, "IS DISTINCT FROM")),
}


def upgrade() -> None:
    op.create_table(
        "vpn_desired_version",
        sa.Column("node", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("node"),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRES_FUNCTION)
        for name, (events, table, condition) in POSTGRES_TRIGGERS.items():
            when = f"WHEN ({condition}) " if condition else ""
            op.execute(
                f"CREATE CONSTRAINT TRIGGER {name} AFTER {events} ON {table} DEFERRABLE INITIALLY DEFERRED "
                f"FOR EACH ROW {when}EXECUTE FUNCTION vpn_desired_version_bump()"
            )
    else:
        for name, (when, body) in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER {name} {when} BEGIN {body} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (_, table, _) in POSTGRES_TRIGGERS.items():
            op.execute(f"DROP TRIGGER {name} ON {table}")
        op.execute("DROP FUNCTION vpn_desired_version_bump()")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER {name}")
    op.drop_table("vpn_desired_version")
