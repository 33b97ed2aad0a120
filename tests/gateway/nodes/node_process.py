"""One gateway node as its own process, for the tests that kill a node: ``python -m tests.gateway.nodes.node_process
PORT``, configured by ``SOHOGW_*`` variables (database, node name, cluster timings). It serves the real app with
its background work on, as ``sohogw serve`` does, without the CA set-up a node death does not depend on; with
``SOHOGW_PORTAL__TLS_*`` set it serves TLS (the hop from HAProxy), asking for a client certificate as serve does.

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
from gateway.web.tls import ClientCertificateConfig, tls_options
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
    # client address from X-Forwarded-For first; with portal.tls_* it serves TLS (to HAProxy: tests' ``Hop``).
    portal = settings.portal
    tls = {}
    if portal.tls_cert_file is not None and portal.tls_key_file is not None:
        client_cas = portal.proxy_certificate_file or portal.tls_cert_file  # kept for OpenSSL's set-up only
        tls = tls_options(portal.tls_cert_file, portal.tls_key_file, client_cas)
    app = create_app(settings)
    config = ClientCertificateConfig(
        app,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
        proxy_headers=False,
        **tls,  # type: ignore[arg-type]
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
