"""Why the nodes domain refuses or fails, as errors the gateway reports with a reason."""

from gateway.errors import GatewayError


class NodeRefusedItsBeat(GatewayError):
    """The row of this node now belongs to another incarnation (a second process under the same ``node_name``)."""

    status_code = 503
    reason = "node_name_taken"


class SecondNodeOnSqlite(GatewayError):
    """SQLite is one file on one host: a second node beside a live one would split the state without telling."""

    status_code = 503
    reason = "second_node_on_sqlite"

    def __init__(self, message: str, *, live_node: str) -> None:
        super().__init__(message)
        self.live_node = live_node
