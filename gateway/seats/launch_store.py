"""The Guacamole gate's `LaunchStore` backed by the launch_token table, so every node sees every launch.

`take` is one atomic ``UPDATE … WHERE used_at IS NULL``: of two nodes redeeming the same launch, one wins.
"""

from datetime import datetime

from sqlalchemy import update
from sqlmodel import Session, col

from desktop_broker.guacamole.gate import Launch, LaunchMode
from gateway.clock import Clock, as_utc
from gateway.seats.models import LaunchToken


class DbLaunchStore:
    """Launches as rows of the caller's transaction (flushed, never committed here)."""

    def __init__(self, db: Session, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def add(self, launch: Launch, now: datetime) -> None:
        self._db.add(
            LaunchToken(
                id=launch.launch_id,
                token_sha256=launch.token_sha256,
                backend="guacamole",
                mode=launch.mode.value,
                login=launch.user,
                seat_id=launch.seat,
                created_at=now,
                expires_at=launch.expires_at,
            )
        )
        self._db.flush()

    def take(self, launch_id: str) -> Launch | None:
        taken = self._db.execute(
            update(LaunchToken)
            .where(
                col(LaunchToken.id) == launch_id,
                col(LaunchToken.backend) == "guacamole",
                col(LaunchToken.used_at).is_(None),
            )
            .values(used_at=self._clock(), used_by="guacamole-lite")
        )
        if taken.rowcount != 1:  # type: ignore[attr-defined]
            return None
        row = self._db.get(LaunchToken, launch_id)
        assert row is not None
        self._db.refresh(row)
        return Launch(row.id, row.login, row.seat_id, LaunchMode(row.mode), row.token_sha256, as_utc(row.expires_at))
