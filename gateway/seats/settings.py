"""The seat broker's settings; the lead nests them as ``settings.seats``."""

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, SecretStr


class SeatSettings(BaseModel):
    """How many X11 seats this node keeps warm and runs, and how long a dropped browser may come back."""

    enabled: bool = True
    """Run the X11 seat pool on this node (needs Xvfb, x11vnc, xprintidle)."""
    warm_per_app: Annotated[int, Field(ge=0, le=50)] = 2
    """Seats kept started and unassigned per published X11 app and display rules."""
    cap_per_node: Annotated[int, Field(ge=1, le=500)] = 40
    """Seats (assigned and warm) this node runs at most; a launch beyond it is refused with a clear message."""
    reconnect_grace_seconds: Annotated[int, Field(ge=5, le=3600)] = 120
    """A seat whose browser left is kept this long for a reconnect (same session), then recycled."""
    launch_token_seconds: Annotated[int, Field(ge=5, le=30)] = 30
    """Lifetime of a one-time launch token (the seat page's websocket must open within it)."""
    homes_root: Path = Path("/var/lib/sohogw/seats")
    runtime_root: Path = Path("/run/sohogw/seats")
    app_python: str = "/usr/bin/python3"
    """The interpreter for apps whose command starts with ``python`` (Debian's, which has python3-tk)."""
    guacamole_secret: SecretStr | None = None
    """Broker secret the guacamole-lite key is derived from; without it Guacamole apps cannot be launched."""
