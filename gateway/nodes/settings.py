"""How this node takes part in a cluster of nodes on one PostgreSQL."""

from typing import Annotated

from pydantic import BaseModel, Field, model_validator


class ClusterSettings(BaseModel):
    """Heartbeats, how long silence means death, and where the other nodes reach this one."""

    heartbeat_seconds: Annotated[float, Field(ge=0.2, le=60)] = 3.0
    """How often this node writes its heartbeat and looks for dead nodes."""
    dead_after_seconds: Annotated[float, Field(ge=1, le=3600)] = 15.0
    """A node whose last beat is older than this is declared dead and everything it owned is ended (``node_lost``).
    Keep node clocks in step (NTP): a node judges another's beat by its own clock."""

    @model_validator(mode="after")
    def _beats_fit_in_the_dead_time(self) -> "ClusterSettings":
        if self.dead_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError("dead_after_seconds must be at least three heartbeats, so one late beat kills no node")
        return self
