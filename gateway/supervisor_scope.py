"""The one guard of every supervisor route of the recordings and call-listening features (seats and voice both use
it, so it sits above the domains, beside ``deps.py``).

`agent_for_supervisor` loads the agent's home session a supervisor asks about, or raises `AgentOutOfScope`
(404: an agent outside one's team is indistinguishable from one that does not exist). Today it refuses only unknown
sessions; team scope (``gateway/supervision/scope.py``) is wired in here, once, at the merge.
"""

from sqlmodel import Session

from gateway.errors import NotFound
from gateway.sessions.models import HomeSession
from gateway.sessions.service import get_session


class AgentOutOfScope(NotFound):
    reason = "supervision.agent_not_found"


def agent_for_supervisor(db: Session, supervisor: HomeSession, agent_session_id: str) -> HomeSession:
    """The agent's session if `supervisor` may look at it; `AgentOutOfScope` otherwise."""
    agent = get_session(db, agent_session_id)
    if agent is None:
        raise AgentOutOfScope("no such agent session")
    return agent
