"""Team scope for every supervisor route: which agents a supervisor may see, watch, be alerted about, report on.

The policy's ``team_scope`` maps team groups to supervisor groups (`policy.teams`); a QA group may see all. An agent
out of scope is answered exactly like an agent that does not exist (404, same message), so a supervisor cannot learn
who is logged in elsewhere by trying session ids; both refusals are audited (``supervision.scope``).

For other domains' supervisor routes (listening, whisper, recordings): ``agent: ScopedAgent`` in a route with a
``{session_id}`` path parameter, or `agent_for_supervisor` from a service.
"""

import json
from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import Session, col, select

from gateway.audit.service import record
from gateway.clock import Clock
from gateway.db import keep_refusal
from gateway.deps import ClockDep, DbSession
from gateway.policies.service import current_policy
from gateway.sessions.client_cert import client_address
from gateway.sessions.deps import SupervisorSession
from gateway.sessions.models import HomeSession, SessionState
from gateway.sessions.service import get_session, policy_groups
from gateway.supervision.errors import AgentNotInScope
from policy import SupervisedTeams, supervised_teams


def supervisor_scope(db: Session, supervisor: HomeSession) -> SupervisedTeams:
    """The teams this supervisor's groups give them under the current policy."""
    return supervised_teams(current_policy(db), policy_groups(supervisor))


def may_see(db: Session, supervisor: HomeSession, agent: HomeSession) -> bool:
    """Whether the supervisor's session may see (watch, listen to, report on) the agent's session."""
    return supervisor_scope(db, supervisor).covers(policy_groups(agent))


def newest_groups(db: Session, logins: Iterable[str | None]) -> dict[str, list[str]]:
    """The policy groups of each login's newest session (alerts are kept by login); a login never seen is left out."""
    wanted = {login for login in logins if login}
    if not wanted:
        return {}
    query = (
        select(HomeSession.login, HomeSession.policy_groups)
        .where(col(HomeSession.login).in_(wanted))
        .order_by(col(HomeSession.created_at))
    )
    newest = dict(db.exec(query).all())  # the last row of each login wins: its newest session
    return {login: json.loads(groups) for login, groups in newest.items()}


def visible_logins(db: Session, scope: SupervisedTeams, logins: Iterable[str | None]) -> set[str]:
    """Of these logins, those whose newest session puts them in the scope."""
    if scope.every_team:
        return {login for login in logins if login}
    return {login for login, groups in newest_groups(db, logins).items() if scope.covers(groups)}


def agent_for_supervisor(
    db: Session, supervisor: HomeSession, session_id: str, *, source: str, clock: Clock, live_only: bool = True
) -> HomeSession:
    """The agent's live session (or, with ``live_only`` false, any agent session: a recording outlives its session)
    if it is in the supervisor's scope; else `AgentNotInScope`, audited (flushed: the caller commits it before the
    error rolls the request back, as `ScopedAgent` does)."""
    agent = get_session(db, session_id)
    state_ok = agent is not None and (agent.state is SessionState.ACTIVE or not live_only)
    live = agent is not None and state_ok and "agent" in agent.role_set
    if agent is not None and live and may_see(db, supervisor, agent):
        return agent
    record(
        db,
        actor=supervisor.login,
        source=source,
        action="supervision.scope",
        outcome="out_of_scope" if live else "no_live_agent",
        target=agent.login if agent is not None and live else "",
        detail={"session": session_id[:64]},
        clock=clock,
    )
    raise AgentNotInScope("no agent with that session is logged in in your teams")


def _scoped(live_only: bool) -> Callable[..., HomeSession]:
    def scoped_agent(
        request: Request, session_id: str, supervisor: SupervisorSession, db: DbSession, clock: ClockDep
    ) -> HomeSession:
        source = client_address(request)
        try:
            return agent_for_supervisor(db, supervisor, session_id, source=source, clock=clock, live_only=live_only)
        except AgentNotInScope:
            keep_refusal(db)
            raise

    return scoped_agent


ScopedAgent = Annotated[HomeSession, Depends(_scoped(live_only=True))]
"""The live agent session named by the route's ``{session_id}``, in the signed-in supervisor's scope, or 404."""
ScopedAgentOfAnyState = Annotated[HomeSession, Depends(_scoped(live_only=False))]
"""The agent session named by the route's ``{session_id}``, live or ended (recordings outlive it), in the signed-in
supervisor's scope, or 404."""
