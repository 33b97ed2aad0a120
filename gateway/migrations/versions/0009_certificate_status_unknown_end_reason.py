"""end reason certificate_status_unknown: a session whose certificate's revocation status stayed unknown past the grace

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


OLD_COLUMN, NEW_COLUMN = "end_reason VARCHAR(23)", "end_reason VARCHAR(26)"


def _declare(old: str, new: str) -> None:
    """SQLite keeps the enum as a VARCHAR as wide as its longest name, which it never enforces (TEXT affinity either
    way). Only the declared width changes, so the table's stored definition is edited in place (sqlite.org,
    lang_altertable.html, "making other kinds of table schema changes") instead of batch mode's copy of the table:
    dropping the old home_session would cascade to tunnel leases and trip seat leases' foreign keys."""
    bind = op.get_bind()
    version = bind.exec_driver_sql("PRAGMA schema_version").scalar_one()
    bind.exec_driver_sql("PRAGMA writable_schema=ON")
    bind.exec_driver_sql(
        "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'home_session'", (old, new)
    )
    bind.exec_driver_sql(f"PRAGMA schema_version={int(version) + 1}")
    bind.exec_driver_sql("PRAGMA writable_schema=OFF")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TYPE endreason ADD VALUE IF NOT EXISTS 'CERTIFICATE_STATUS_UNKNOWN'")
    else:
        _declare(OLD_COLUMN, NEW_COLUMN)


def downgrade() -> None:
    # PostgreSQL cannot drop a value from an enum type; sessions ended with it keep their reason there.
    if op.get_bind().dialect.name != "postgresql":
        _declare(NEW_COLUMN, OLD_COLUMN)
