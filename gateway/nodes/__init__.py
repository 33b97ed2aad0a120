"""Several gateway nodes on one PostgreSQL: each node's heartbeat, the one survivor that declares a silent node dead
and ends what it owned, the cluster gate that runs once-per-cluster work once per interval, and the listener that
carries nudges between nodes over ``LISTEN/NOTIFY``. PostgreSQL is the only shared component."""
