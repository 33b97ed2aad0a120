"""person keys for callback numbers, call legs and events, VPN addresses, tunnel leases and seat leases

Callback numbers and VPN addresses were held by the account name, so a rename in the directory gave the person a new
number to re-verify and a new tunnel address. They, the call legs and events, tunnel leases and seat leases now
carry the person's directory id (``person_id``, as home_session does since 0008); ``login`` stays for display, and
no longer has to be unique.

An existing row takes the person of its own session where it has one, else of the newest session of its login, else
``legacy:<login>`` as 0008 does, to be adopted at the person's next sign-in (``gateway/sessions/adoption.py``). Where
two account names of one person held the same callback number, or each held addresses, the oldest row keeps the
person and the others become ``legacy:<login>`` (addresses released, so they return to the pool after the hold-back).

Contract: the unique keys move from the account name to person_id and person_id becomes NOT NULL, so nodes of the
previous release cannot write these rows: stop all nodes, ``sohogw db upgrade``, start all nodes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PERSON_ID = sqlmodel.sql.sqltypes.AutoString(length=255)
WITH_SESSION = ("voice_call_leg", "voice_call_event", "vpn_tunnel_lease", "seat_lease")
WITHOUT_SESSION = ("voice_callback_number", "vpn_address_assignment")
COPIED = ("voice_call_leg", "voice_call_event", "vpn_tunnel_lease")
"""Made NOT NULL by batch mode's copy of the table on SQLite (nothing references these tables)."""

# The unnamed UNIQUE constraints of 0003 and 0004: PostgreSQL names them <table>_<columns>_key; SQLite leaves them
# unnamed, so batch mode's copy names them by this convention to be able to drop them.
SQLITE_UNIQUE = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
LOGIN_UNIQUE = {
    "voice_callback_number": ("voice_callback_number_login_e164_key", "uq_voice_callback_number_login"),
    "vpn_address_assignment": ("vpn_address_assignment_login_key", "uq_vpn_address_assignment_login"),
}


HOME_SESSION = sa.table(
    "home_session", sa.column("id"), sa.column("person_id"), sa.column("login"), sa.column("created_at")
)


def _rows(table: str) -> sa.TableClause:
    columns = ["id", "person_id", "login", "e164", "released_at", "session_id"]
    return sa.table(table, *(sa.column(name, sa.String) for name in columns))


def _legacy(rows: sa.TableClause | sa.Alias) -> sa.ColumnElement[str]:
    return sa.literal("legacy:", sa.String) + rows.c.login


def _fill(table: str) -> None:
    rows, home = _rows(table), HOME_SESSION
    own = sa.select(home.c.person_id).where(home.c.id == rows.c.session_id).scalar_subquery()
    newest = (
        sa.select(home.c.person_id)
        .where(home.c.login == rows.c.login)
        .order_by(home.c.created_at.desc())
        .limit(1)
        .scalar_subquery()
    )
    sources = ([own] if table in WITH_SESSION else []) + [newest, _legacy(rows)]
    op.execute(rows.update().values(person_id=sa.func.coalesce(*sources)))


def _separate_duplicates() -> None:
    """Rows that would break the new unique constraints: all but the oldest become ``legacy:<login>``."""
    numbers = _rows("voice_callback_number")
    older = numbers.alias("older")
    op.execute(
        numbers.update()
        .where(
            sa.exists().where(
                older.c.person_id == numbers.c.person_id, older.c.e164 == numbers.c.e164, older.c.id < numbers.c.id
            )
        )
        .values(person_id=_legacy(numbers))
    )
    addresses = _rows("vpn_address_assignment")
    older = addresses.alias("older")
    op.execute(
        addresses.update()
        .where(sa.exists().where(older.c.person_id == addresses.c.person_id, older.c.id < addresses.c.id))
        .values(
            person_id=_legacy(addresses),
            released_at=sa.func.coalesce(addresses.c.released_at, sa.func.current_timestamp()),
        )
    )


def _person_column(table: str) -> sa.Column[str]:
    """seat_lease cannot be copied on SQLite: launch_token's foreign key refuses dropping the old table while tokens
    point at it. There the column is added NOT NULL with an empty default (SQLite keeps the declared default; no
    row is left with it); PostgreSQL drops the default once filled."""
    if table == "seat_lease":
        return sa.Column("person_id", PERSON_ID, nullable=False, server_default="")
    return sa.Column("person_id", PERSON_ID, nullable=True)


def _naming() -> dict[str, str] | None:
    return SQLITE_UNIQUE if op.get_bind().dialect.name == "sqlite" else None


def _login_unique(table: str) -> str:
    postgres_name, sqlite_name = LOGIN_UNIQUE[table]
    return sqlite_name if op.get_bind().dialect.name == "sqlite" else postgres_name


def upgrade() -> None:
    for table in WITH_SESSION + WITHOUT_SESSION:
        op.add_column(table, _person_column(table))
        _fill(table)
    _separate_duplicates()
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("seat_lease", "person_id", existing_type=PERSON_ID, server_default=None)
    op.create_index(op.f("ix_seat_lease_person_id"), "seat_lease", ["person_id"], unique=False)
    for table in COPIED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("person_id", existing_type=PERSON_ID, nullable=False)
            batch_op.create_index(batch_op.f(f"ix_{table}_person_id"), ["person_id"], unique=False)
    with op.batch_alter_table("voice_callback_number", naming_convention=_naming()) as batch_op:
        batch_op.alter_column("person_id", existing_type=PERSON_ID, nullable=False)
        batch_op.drop_constraint(_login_unique("voice_callback_number"), type_="unique")
        batch_op.create_unique_constraint("voice_callback_number_person_id_e164_key", ["person_id", "e164"])
        batch_op.create_index(batch_op.f("ix_voice_callback_number_person_id"), ["person_id"], unique=False)
    with op.batch_alter_table("vpn_address_assignment", naming_convention=_naming()) as batch_op:
        batch_op.alter_column("person_id", existing_type=PERSON_ID, nullable=False)
        batch_op.drop_constraint(_login_unique("vpn_address_assignment"), type_="unique")
        batch_op.create_unique_constraint("vpn_address_assignment_person_id_key", ["person_id"])


def downgrade() -> None:
    """Back to rows held by name. Fails where two people's rows carry one login (an account name given to someone
    else after a rename): remove one of them first."""
    with op.batch_alter_table("vpn_address_assignment", naming_convention=_naming()) as batch_op:
        batch_op.drop_constraint("vpn_address_assignment_person_id_key", type_="unique")
        batch_op.create_unique_constraint(_login_unique("vpn_address_assignment"), ["login"])
        batch_op.drop_column("person_id")
    with op.batch_alter_table("voice_callback_number", naming_convention=_naming()) as batch_op:
        batch_op.drop_index(batch_op.f("ix_voice_callback_number_person_id"))
        batch_op.drop_constraint("voice_callback_number_person_id_e164_key", type_="unique")
        batch_op.create_unique_constraint(_login_unique("voice_callback_number"), ["login", "e164"])
        batch_op.drop_column("person_id")
    op.drop_index(op.f("ix_seat_lease_person_id"), table_name="seat_lease")
    op.drop_column("seat_lease", "person_id")
    for table in COPIED:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_index(batch_op.f(f"ix_{table}_person_id"))
            batch_op.drop_column("person_id")
