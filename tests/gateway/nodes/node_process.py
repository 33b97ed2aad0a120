"""One gateway node as its own process, for the tests that kill a node: ``python -m tests.gateway.nodes.node_process
PORT``, configured by ``SOHOGW_*`` variables (database, node name, cluster timings). It serves the real app with
its background work on, as ``sohogw serve`` does, without the CA and TLS set-up a node death does not depend on."""

import sys

import uvicorn

from gateway.app import create_app
from gateway.settings import load_settings


def main() -> None:
    settings = load_settings()
    uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")


if __name__ == "__main__":
    main()
