"""One way every form is refused: the same page again, the reason translated beside the form, and what was typed
still in its fields — never an error page that loses the person's work, never an operator's setting in front of an
agent.

A route runs its service call through ``attempt``: the call's changes sit in a savepoint, undone on a refusal
(unless the refusal itself must last, such as a counted wrong code), and the refusal is audited in the request's
transaction, which then commits. The route renders its page again with ``refused_page``; templates read the typed
values from ``typed`` (``{{ typed.get("notes", "") }}``).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from fastapi import Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session
from starlette.datastructures import FormData

from gateway.audit.service import record
from gateway.errors import GatewayError
from gateway.events import drop_pending_since, pending_mark
from gateway.web.i18n import translate
from gateway.web.pages import language_of, reason_message, render

T = TypeVar("T")
NOT_KEPT = frozenset({"csrf", "password", "code", "enrolment_code", "confirmed"})
"""Fields never written back into a page: secrets, one-time codes and the confirmation."""


@dataclass(frozen=True, slots=True)
class AuditedAs:
    """Who tried what, for the refusal's audit row."""

    actor: str
    action: str
    source: str = ""
    target: str = ""


def attempt(
    db: Session,
    work: Callable[[], T],
    audited: AuditedAs,
    *,
    keep_on_refusal: Callable[[GatewayError], bool] | None = None,
) -> T | GatewayError:
    """``work()``'s result, or the refusal it raised with its changes undone (kept when ``keep_on_refusal(error)``
    says so: a counted wrong code must outlive its refusal) and an audit row written."""
    mark = pending_mark(db)
    try:
        with db.begin_nested():  # released when the block ends; rolled back when the refusal leaves it
            outcome = _kept_or_raised(work, keep_on_refusal)
    except GatewayError as error:
        drop_pending_since(db, mark)
        outcome = error
    if isinstance(outcome, GatewayError):
        record(
            db,
            actor=audited.actor,
            source=audited.source,
            action=audited.action,
            target=audited.target[:100],
            outcome="refused",
            detail={"reason": outcome.key or outcome.reason, "message": outcome.message},
        )
    return outcome


def _kept_or_raised(work: Callable[[], T], keep_on_refusal: Callable[[GatewayError], bool] | None) -> T | GatewayError:
    """``work()``'s result; a refusal to keep is returned (its changes stay in the savepoint), any other raised."""
    try:
        return work()
    except GatewayError as error:
        if keep_on_refusal is not None and keep_on_refusal(error):
            return error
        raise


def refusal_message(request: Request, error: GatewayError) -> str:
    """What the person reads: the error's own catalog key, else its reason's, else a translated headline with the
    service's text."""
    return stored_refusal_message(request, error.key, error.values, error.reason, error.message)


def stored_refusal_message(request: Request, key: str, values: Mapping[str, object], reason: str, message: str) -> str:
    """``refusal_message`` of a refusal kept as data (a CSV import's row problems) rather than raised."""
    language = language_of(request)
    if key:
        return translate(language, f"refused.{key}", **values)
    fallback = translate(language, "refused.other", detail=message)
    return reason_message(request, reason, fallback, detail=message)


def typed(form: FormData) -> dict[str, str]:
    """The text fields of ``form`` as typed, to put back into the page (files cannot be put back)."""
    return {name: value for name, value in form.multi_items() if isinstance(value, str) and name not in NOT_KEPT}


def refused_page(
    request: Request, template: str, error: GatewayError, form: FormData, message: str = "", **context: object
) -> HTMLResponse:
    """``template`` again with the refusal (or ``message``, a page's own wording of it) beside the form and the
    typed values in it."""
    shown = message or refusal_message(request, error)
    return render(request, template, error.status_code, error=shown, typed=typed(form), **context)
