"""An agent's home session as the supervisor-facing features of lower domains (recordings, call listening) ask for it.

Team scope is supervision's (``gateway/supervision/scope.py``), which sits above those domains: its routes check it
first (``ScopedAgent``: 404 and an audit row for an agent out of scope), and these domains then only need the session
to exist.
"""

from sqlmodel import Session

from gateway.sessions.errors import UnknownAgent
from gateway.sessions.models import HomeSession
from gateway.sessions.service import get_session


def known_agent(db: Session, agent_session_id: str) -> HomeSession:
    """The agent's session; `UnknownAgent` (404) when there is none."""
    agent = get_session(db, agent_session_id)
    if agent is None:
        raise UnknownAgent("no such agent session")
    return agent
