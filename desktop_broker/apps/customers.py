"""The demo's fake customers and the check of their service password.

Service passwords are stored as salted PBKDF2-SHA256 hashes even in the demo, so the bundled file shows
the shape a real customer database adapter would have.
"""

import hashlib
import hmac
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    name: str
    phone: str
    plan: str
    balance: str
    password_salt: bytes
    password_hash: bytes
    iterations: int


def load_customers() -> list[Customer]:
    """The customers bundled in `customers.json` inside this package."""
    data = json.loads(resources.files(__package__).joinpath("customers.json").read_text())
    return [
        Customer(
            row["id"],
            row["name"],
            row["phone"],
            row["plan"],
            row["balance"],
            bytes.fromhex(row["password_salt"]),
            bytes.fromhex(row["password_pbkdf2_sha256"]),
            data["pbkdf2_iterations"],
        )
        for row in data["customers"]
    ]


def verify_service_password(customer: Customer, password: str) -> bool:
    """True when `password` is the customer's service password (constant-time comparison)."""
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), customer.password_salt, customer.iterations)
    return hmac.compare_digest(candidate, customer.password_hash)


def masked_phone(phone: str) -> str:
    """'+86138****0001': enough for the agent to recognise, not enough to copy down."""
    return phone[:-8] + "****" + phone[-4:] if len(phone) > 8 else "****"
