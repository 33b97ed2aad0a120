"""One gateway node as its own process, for the tests that kill a node: ``python -m tests.gateway.nodes.node_process
PORT``, configured by ``SOHOGW_*`` variables (database, node name, cluster timings). It serves the real app with
its background work on, as ``sohogw serve`` does, without the CA and TLS set-up a node death does not depend on.

With ``NODE_PROCESS_CLUSTER_PASS_SECONDS`` set it also runs ``ClusterPass``, a cluster-scope worker under the
database gate that writes one audit row per pass: the app has no cluster-scope worker of its own yet, and a row per
pass is what lets a test count that a pass ran exactly once per interval across all nodes, a node's death included.
"""

import os
import sys
from collections.abc import Sequence
from datetime import timedelta

import uvicorn
from sqlalchemy import Engine
from sqlmodel import Session

from gateway.app import create_app
from gateway.audit.service import record
from gateway.db import make_engine, session_scope
from gateway.nodes.gate import DatabaseClusterGate
from gateway.settings import load_settings
from gateway.workers.contract import Nudge, Schedule, Scope, Worker
from gateway.workers.runner import WorkerRunner

CLUSTER_PASS = "test.cluster_pass"


class ClusterPass(Worker[None, None]):
    """One audit row (``test.cluster_pass``, actor ``node:<name>``) per pass, on whichever node claimed it."""

    name = CLUSTER_PASS

    def __init__(self, engine: Engine, node: str, interval: float) -> None:
        self.engine, self.node = engine, node
        self.schedule = Schedule(interval=timedelta(seconds=interval), scope=Scope.CLUSTER)

    def desired(self, db: Session, nudges: Sequence[Nudge]) -> None:
        return None

    def apply(self, desired: None, observed: None) -> None:
        with session_scope(self.engine) as db:
            record(db, actor=f"node:{self.node}", action=CLUSTER_PASS, outcome="ran", target=self.node)


def main() -> None:
    settings = load_settings()
    interval = os.environ.get("NODE_PROCESS_CLUSTER_PASS_SECONDS")
    if interval:
        engine = make_engine(settings.database_url)
        gate = DatabaseClusterGate(engine, settings.node_name)
        WorkerRunner([ClusterPass(engine, settings.node_name, float(interval))], engine, gate=gate).start()
    # As ``sohogw serve``: the portal alone decides whether a proxy proved itself, uvicorn must not rewrite the
    # client address from X-Forwarded-For first.
    app = create_app(settings)
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", proxy_headers=False)


if __name__ == "__main__":
    main()
