"""The rule the console enforces: customer data only during a call, only after the caller's service
password verified, and gone again when the call ends. Kept apart from Tk so it can be tested directly."""

from dataclasses import dataclass, field

from desktop_broker.apps.customers import Customer, verify_service_password

MAX_PASSWORD_ATTEMPTS = 3


@dataclass(slots=True)
class ConsoleSession:
    customers: list[Customer]
    caller: str | None = None
    customer: Customer | None = None
    verified: bool = False
    attempts_left: int = field(default=MAX_PASSWORD_ATTEMPTS)

    def call_started(self, caller: str) -> None:
        """A new call: forget everything about the previous one, look the caller up by number."""
        if caller == self.caller:
            return
        self.call_ended()
        self.caller = caller
        self.customer = next((c for c in self.customers if c.phone == caller), None)

    def call_ended(self) -> None:
        self.caller = None
        self.customer = None
        self.verified = False
        self.attempts_left = MAX_PASSWORD_ATTEMPTS

    def verify(self, password: str) -> bool:
        """Check the service password the caller gave; after three failures the call stays locked."""
        if self.customer is None or self.verified or self.attempts_left <= 0:
            return self.verified
        if verify_service_password(self.customer, password):
            self.verified = True
        else:
            self.attempts_left -= 1
        return self.verified

    def visible_customer(self) -> Customer | None:
        """The customer whose data may be on screen right now, if any."""
        return self.customer if self.caller is not None and self.verified else None

    def status(self) -> str:
        if self.caller is None:
            return "idle"
        if self.verified:
            return "on call: verified"
        if self.customer is None:
            return "on call: unknown caller"
        return "on call: locked" if self.attempts_left <= 0 else "on call"
