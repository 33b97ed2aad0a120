"""The VPN's desired state: each agent's stable addresses, and one tunnel lease per home session."""

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Column, DateTime, ForeignKey, String, Text
from sqlmodel import Field, SQLModel


class AddressAssignment(SQLModel, table=True):
    """An agent's /32 and /128, kept across sessions; ``ordinal`` is the host number in both pools.

    Released when the agent's last tunnel ends, and held back for its owner for the configured period before
    another agent may take it over. The unique constraints are what makes concurrent assignment safe. Held by the
    person (the directory's stable id), so a renamed account keeps its addresses; ``login`` is the account name it
    was last assigned under, for display.
    """

    __tablename__ = "vpn_address_assignment"

    id: int | None = Field(default=None, primary_key=True)
    person_id: str = Field(max_length=255, unique=True)
    login: str = Field(max_length=255)
    ordinal: int = Field(unique=True)
    ipv4: str = Field(max_length=15, unique=True)
    ipv6: str = Field(max_length=39, unique=True)
    assigned_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    released_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True), index=True))


class LeaseState(StrEnum):
    DESIRED = "desired"
    """The peer should exist while its session is active."""
    REMOVED = "removed"


class TunnelLease(SQLModel, table=True):
    """The WireGuard peer of one home session: key from the certificate, addresses from IPAM, scope from policy.

    Only a wish: the reconciler installs the peer while the lease is desired AND its session is active, so a
    missed "session ended" nudge can never leave a peer behind. The health fields are sampled by each
    reconcile for supervision.
    """

    __tablename__ = "vpn_tunnel_lease"

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(
        sa_column=Column(String(32), ForeignKey("home_session.id", ondelete="CASCADE"), nullable=False, unique=True)
    )
    person_id: str = Field(max_length=255, index=True)
    login: str = Field(max_length=255, index=True)
    """The account name of the session, for display."""
    public_key: str = Field(max_length=64, index=True)
    ipv4: str = Field(max_length=15)
    ipv6: str = Field(max_length=39)
    scope: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    """JSON list of [cidr, protocol, port or null] the seat may reach (the compiled network scope)."""
    state: LeaseState = Field(max_length=16, index=True)
    node: str | None = Field(default=None, max_length=255, index=True)
    """The gateway node that terminates this tunnel (installs its peer and scope): the node that wrote the lease.
    None for leases written before nodes were named (migration 0013); every node serves those."""
    gateway_endpoint: str | None = Field(default=None, max_length=255)
    """The ``vpn.endpoint`` of that node, which the agent's config names, whichever node renders it."""
    created_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    removed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    latest_handshake_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    endpoint: str | None = Field(default=None, max_length=64)
    rx_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    tx_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    health_sampled_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class DesiredStateVersion(SQLModel, table=True):
    """How often the VPN's desired state of one node has changed: a safety-net pass that finds its node's versions
    as it left them (and no session's time run out) knows the database wants what it read last time, without reading
    10,000 leases again.

    Bumped by database triggers (migration 0021) in the transaction of the change itself, whoever writes it: a tunnel
    lease inserted, deleted or changed in a column its peer is made of (not the health samples), and a home session
    inserted with a key or changed in its state, times, key or node (not ``last_seen_at``). The row bumped is the
    lease's node ('' for a lease of no node) and the session's own node. On PostgreSQL the triggers run at commit
    and queue on one advisory lock, so two commits never take its rows in opposite orders."""

    __tablename__ = "vpn_desired_version"

    node: str = Field(primary_key=True, max_length=255)
    version: int = Field(sa_column=Column(BigInteger, nullable=False))
