"""Actions that end, revoke, approve or suspend ask first, and say afterwards what they did.

The server decides: a form that changes something irreversible must carry ``confirmed=yes``; without it the route
changes nothing and answers with a confirmation page that posts the same fields again with the confirmation. The
page's own dialog (``static/confirm.js``, for forms marked ``data-confirm``) only saves that round trip: a missing or
declined dialog leaves the form unconfirmed, and the server asks. After the action, the route redirects with
``?done=<key>``; the page shows the catalog's ``done.<key>`` (unknown keys show nothing, so a link cannot put words
in the gateway's mouth).
"""

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.datastructures import FormData, UploadFile

from gateway.web.pages import render

CONFIRMED = "confirmed"


def ask_first(
    request: Request, form: FormData, *, question: str, confirm_label: str, cancel: str
) -> HTMLResponse | None:
    """None when ``form`` was confirmed; otherwise the confirmation page (status 200: nothing was refused)."""
    if form.get(CONFIRMED) == "yes":
        return None
    fields = [(name, value) for name, value in form.multi_items() if isinstance(value, str) and name != CONFIRMED]
    file_left_behind = any(isinstance(value, UploadFile) and value.filename for _, value in form.multi_items())
    return render(
        request,
        "confirm.html",
        question=question,
        confirm_label=confirm_label,
        action=request.url.path,
        fields=fields,
        cancel=cancel,
        file_left_behind=file_left_behind,
    )


def done(url: str, key: str) -> RedirectResponse:
    """Back to ``url`` with the notice ``done.<key>`` (a key of the catalogs)."""
    separator = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{separator}done={key}", status_code=303)
