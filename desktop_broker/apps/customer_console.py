"""Customer Console: the demo agent application published on kiosk seats.

Run as `python -m desktop_broker.apps.customer_console`. The window title always reads
"Customer Console - <status>" so the broker and tests can see the state without reading pixels.
Call state comes from the file in SOHOGW_CALL_STATE; without it the agent simulates calls with buttons.
"""

import itertools
import tkinter
from pathlib import Path

from desktop_broker.apps.call_state import call_state_path, read_call_state
from desktop_broker.apps.console_session import ConsoleSession
from desktop_broker.apps.customers import Customer, load_customers, masked_phone

TITLE = "Customer Console"
_POLL_MS = 300
_BIG = ("DejaVu Sans", 20)
_HEADER = ("DejaVu Sans", 30, "bold")
_BACKGROUND = "#f4f6f8"


class CustomerConsole:
    """The window: call banner, service-password check, and the customer card shown only when allowed."""

    def __init__(self, root: tkinter.Tk, customers: list[Customer], state_file: Path | None) -> None:
        self.root = root
        self.session = ConsoleSession(customers)
        self.state_file = state_file
        self._next_caller = itertools.cycle(c.phone for c in customers)
        root.configure(bg=_BACKGROUND)
        root.geometry(f"{root.winfo_screenwidth()}x{root.winfo_screenheight()}+0+0")
        tkinter.Label(root, text=TITLE, font=_HEADER, bg="#1f4e79", fg="white", pady=12).pack(fill="x")
        self.banner = self._label("")
        row = tkinter.Frame(root, bg=_BACKGROUND)
        row.pack(pady=10)
        tkinter.Label(row, text="Service password:", font=_BIG, bg=_BACKGROUND).pack(side="left")
        # No blinking cursor: on a remote display every blink is a frame sent to the home PC.
        self.password = tkinter.Entry(row, show="•", font=_BIG, width=10, insertofftime=0)
        self.password.pack(side="left", padx=10)
        self.password.bind("<Return>", lambda _event: self.verify())
        tkinter.Button(row, text="Verify", font=_BIG, command=self.verify).pack(side="left")
        self.message = self._label("")
        self.card = self._label("", justify="left", font=("DejaVu Sans", 24))
        if state_file is None:
            buttons = tkinter.Frame(root, bg=_BACKGROUND)
            buttons.pack(pady=20)
            tkinter.Button(buttons, text="Simulate incoming call", font=_BIG, command=self.simulate_call).pack(
                side="left", padx=10
            )
            tkinter.Button(buttons, text="End call", font=_BIG, command=self.end_call).pack(side="left", padx=10)
        else:
            self.poll_call_state()
        self.password.focus_force()
        self.render()

    def _label(self, text: str, **options: object) -> tkinter.Label:
        label = tkinter.Label(self.root, text=text, **{"font": _BIG, "bg": _BACKGROUND, **options})  # type: ignore[arg-type]
        label.pack(pady=8)
        return label

    def poll_call_state(self) -> None:
        assert self.state_file is not None
        state = read_call_state(self.state_file)
        if state.active and state.caller is not None:
            self.session.call_started(state.caller)
        elif self.session.caller is not None:
            self.session.call_ended()
        self.render()
        self.root.after(_POLL_MS, self.poll_call_state)

    def simulate_call(self) -> None:
        self.session.call_started(next(self._next_caller))
        self.render()

    def end_call(self) -> None:
        self.session.call_ended()
        self.render()

    def verify(self) -> None:
        password = self.password.get()
        self.password.delete(0, "end")
        verified = self.session.verify(password)
        self.message.configure(text="" if verified else "Service password not accepted")
        self.render()

    def render(self) -> None:
        session = self.session
        self.root.title(f"{TITLE} - {session.status()}")
        if session.caller is None:
            self.banner.configure(text="No active call", fg="#555555")
            self.message.configure(text="")
        else:
            self.banner.configure(text=f"On call with {masked_phone(session.caller)}", fg="#0a7d32")
        customer = session.visible_customer()
        self.card.configure(
            text=f"Name:     {customer.name}\nPlan:     {customer.plan}\nBalance:  ¥ {customer.balance}"
            if customer
            else ""
        )


def main() -> None:
    root = tkinter.Tk(className="customer-console")
    CustomerConsole(root, load_customers(), call_state_path())
    root.mainloop()


if __name__ == "__main__":
    main()
