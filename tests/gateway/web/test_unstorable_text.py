"""Text PostgreSQL cannot store is a client's error, the same on both databases: a NUL character is refused at the
door with the field it was in (`gateway.web.unstorable_text`), a value longer than its column by the form that
takes it, with what was typed kept (`gateway.db.fits_column`). On PostgreSQL each of these requests answered 500 and
lost its audit row or what was typed; SQLite stored them.
"""

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlmodel import col, select

from gateway.audit.models import AuditEvent
from gateway.db import session_scope
from gateway.enrollment.models import Application
from gateway.policies.models import PolicyVersion
from tests.gateway.enrollment.conftest import (
    GROUPS,
    PASSWORDS,
    Portal,
    csrf_of,
    policy_text,
    post_form,
    running_portal,
    sign_in,
    signed_in,
)
from tests.support.portal import PROXY_SECRET, page_error, serving_portal

HTML = {"accept": "text/html"}


@pytest.fixture
def portal(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[Portal]:
    """Enrollment's portal: every role signs in with a password, applicants apply and run the environment check."""
    with running_portal(tmp_path, db_url, engine) as running:
        yield running


def _refusals(portal: Portal) -> list[dict[str, object]]:
    with session_scope(portal.engine) as db:
        rows = db.exec(
            select(AuditEvent).where(AuditEvent.action == "http.unstorable_text").order_by(col(AuditEvent.seq))
        ).all()
        return [{"target": row.target, **json.loads(row.detail)} for row in rows]


def test_a_sign_in_name_with_a_nul_is_refused_audited_and_the_right_one_then_signs_in(portal: Portal) -> None:
    with portal.client() as client:
        page = client.get("/login")
        form = {"username": "applicant1\x00", "password": PASSWORDS["applicant1"], "csrf": csrf_of(page)}
        refused = client.post("/login", data=form, headers={**HTML, "accept-language": "zh-CN"})
        assert refused.status_code == 422
        assert page_error(refused) == (
            "字段“username”含有无法保存的字符（空字符 NUL，U+0000，或孤立的代理码位 U+D800–DFFF）。请删除后重新提交。"
        )
        assert sign_in(client, "applicant1").status_code == 303
    [row] = _refusals(portal)
    assert row == {"target": "POST /login", "field": "username", "value": "applicant1\x00", "requests": 1}


def test_a_password_with_a_nul_is_refused_without_keeping_it(portal: Portal) -> None:
    with portal.client() as client:
        page = client.get("/login")
        form = {"username": "applicant1", "password": "pass\x00word", "csrf": csrf_of(page)}
        refused = client.post("/login", data=form, headers=HTML)
        assert refused.status_code == 422 and "“password”" in page_error(refused)
    assert [(row["field"], row["value"]) for row in _refusals(portal)] == [("password", "")]


@pytest.mark.parametrize(
    ("document", "field"),
    [({"x": {"password": "pass\x00word"}}, "x.password"), ({"items": [{"code": ["12\x00"]}]}, "items[0].code[0]")],
)
def test_a_secret_with_a_nul_deep_in_json_is_refused_without_keeping_it(
    portal: Portal, document: dict[str, object], field: str
) -> None:
    """The secret's name is a JSON path's last key: the whole path (``x.password``) named no secret, and was kept."""
    with signed_in(portal, "applicant1") as client:
        refused = client.post("/enrollment/envcheck/runs/r/result", json=document, headers=_script_headers(client))
        assert refused.status_code == 422
    assert [(row["field"], row["value"]) for row in _refusals(portal)] == [(field, "")]


def test_hr_starting_an_application_for_a_login_with_a_nul_is_refused_and_the_right_one_starts(portal: Portal) -> None:
    with signed_in(portal, "hr1") as client:
        refused = post_form(client, "/hr", "/hr/enrollment/start", {"login": "applicant2\x00", "callback_number": ""})
        assert refused.status_code == 422
        assert page_error(refused) == (
            "The field “login” holds a character that cannot be stored (a NUL, U+0000, or a lone surrogate, "
            "U+D800–DFFF). Remove it and try again."
        )
        started = post_form(client, "/hr", "/hr/enrollment/start", {"login": "applicant2", "callback_number": ""})
        assert started.status_code == 303, page_error(started)
    with session_scope(portal.engine) as db:
        assert [a.login for a in db.exec(select(Application)).all()] == ["applicant2"]


def test_a_nul_in_a_multipart_forms_text_is_refused_and_one_in_its_file_is_not(portal: Portal) -> None:
    """The file part is bytes the gateway keeps as they are (a scan, a DER certificate): its NULs are no refusal."""
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
    with session_scope(portal.engine) as db:
        page = f"/hr/enrollment/{db.exec(select(Application.id)).one()}"
    scan = {"evidence": ("scan.pdf", b"%PDF-1.4\n" + bytes(64), "application/pdf")}
    with signed_in(portal, "hr1") as client:
        refused = post_form(client, page, f"{page}/evidence", {"stage": "application\x00"}, files=scan)
        assert refused.status_code == 422 and "“stage”" in page_error(refused)
        kept = post_form(client, page, f"{page}/evidence", {"stage": "application"}, files=scan)
        assert kept.status_code == 303, page_error(kept)


def _script_headers(client: httpx.Client) -> dict[str, str]:
    return {"x-csrf-token": csrf_of(client.get("/enrollment"))}


def test_the_environment_check_api_refuses_a_nul_in_a_query_or_a_json_string_as_json(portal: Portal) -> None:
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
        run = client.post("/enrollment/envcheck/runs", headers=_script_headers(client)).json()["run"]
        refused = client.get("/enrollment/envcheck/ping", params={"run": f"{run}\x00"})
        assert refused.status_code == 422
        assert refused.json() == {
            "error": "unstorable_text",
            "field": "run",
            "message": "the field “run” holds a character that cannot be stored (a NUL, U+0000, or a lone "
            "surrogate, U+D800–DFFF); remove it and try again",
        }
        assert client.get("/enrollment/envcheck/ping", params={"run": run}).status_code == 200
        report = {"checklist": {"pc_class": "meets\x00"}, "device": {"user_agent": "test"}}
        result = f"/enrollment/envcheck/runs/{run}/result"
        refused = client.post(result, json=report, headers=_script_headers(client))
        assert refused.status_code == 422 and refused.json()["field"] == "checklist.pc_class"
        report["checklist"]["pc_class"] = "meets"
        assert client.post(result, json=report, headers=_script_headers(client)).status_code == 200


@pytest.mark.parametrize("user_agent", ["\ud800", "\x00\ud800"])
def test_a_lone_surrogate_in_a_json_string_is_refused_and_audited_visibly(portal: Portal, user_agent: str) -> None:
    """A lone surrogate does not encode as UTF-8: neither psycopg nor sqlite3 could send it (500 on both), and the
    refusal of one beside a NUL failed its own audit row. The row shows it as ``\\ud800``."""
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
        run = client.post("/enrollment/envcheck/runs", headers=_script_headers(client)).json()["run"]
        report = {"checklist": {"pc_class": "meets"}, "device": {"user_agent": user_agent}}
        headers = {**_script_headers(client), "content-type": "application/json"}
        sent = json.dumps(report).encode()  # escaped: httpx's own JSON cannot encode a surrogate
        refused = client.post(f"/enrollment/envcheck/runs/{run}/result", content=sent, headers=headers)
        assert refused.status_code == 422 and refused.json()["field"] == "device.user_agent"
    [row] = _refusals(portal)
    assert row["value"] == user_agent.replace("\ud800", "\\ud800")


def test_a_multipart_text_part_decoded_to_a_lone_surrogate_is_refused(portal: Portal) -> None:
    """A form in ``charset=utf-7`` (which Starlette decodes with) turns ``+2AA-`` into U+D800: HR's decision notes
    holding one answered 500 on both databases."""
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
    with session_scope(portal.engine) as db:
        application = db.exec(select(Application)).one()
        page, stage = f"/hr/enrollment/{application.id}", application.stage
    with signed_in(portal, "hr1") as client:
        fields = {"stage": stage, "outcome": "skipped", "notes": "ok +2AA-", "override_reason": "r"}
        fields["csrf"] = csrf_of(client.get(page, headers=HTML))
        body = "".join(f'--B\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{v}\r\n' for n, v in fields.items())
        headers = {"content-type": "multipart/form-data; boundary=B; charset=utf-7", **HTML}
        refused = client.post(f"{page}/decide", content=f"{body}--B--\r\n".encode(), headers=headers)
        assert refused.status_code == 422 and "“notes”" in page_error(refused)
    assert [(row["field"], row["value"]) for row in _refusals(portal)] == [("notes", "ok \\ud800")]


def test_a_request_with_two_content_types_is_refused_before_the_sign_in_reads_its_form(portal: Portal) -> None:
    """Starlette reads the first Content-Type, a check reading the last saw ``text/plain`` and let the form's NUL
    through to the sign-in (500 on PostgreSQL): with two, which one the body is cannot be known, so neither is used."""
    with portal.client() as client:
        body = f"username=applicant1%00&password=x&csrf={csrf_of(client.get('/login'))}"
        two = [("content-type", "application/x-www-form-urlencoded"), ("content-type", "text/plain"), *HTML.items()]
        refused = client.post("/login", content=body, headers=two)
        assert refused.status_code == 400
        assert page_error(refused) == "The request has more than one Content-Type header. Send it with one."
        assert sign_in(client, "applicant1").status_code == 303
    with session_scope(portal.engine) as db:
        [row] = db.exec(select(AuditEvent).where(AuditEvent.action == "http.two_content_types")).all()
        assert json.loads(row.detail)["content_types"] == ["application/x-www-form-urlencoded", "text/plain"]


@pytest.mark.parametrize("content_type", [b"application/json\xa0", b"application/octet-stream", b"text/plain"])
def test_a_json_body_is_looked_through_whatever_type_it_declares(portal: Portal, content_type: bytes) -> None:
    """FastAPI took ``application/json\\xa0`` for JSON, and the environment check's result is parsed as JSON whatever
    its type: the NUL in it reached PostgreSQL (500)."""
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
        run = client.post("/enrollment/envcheck/runs", headers=_script_headers(client)).json()["run"]
        report = {"checklist": {"pc_class": "meets\x00"}, "device": {"user_agent": "test"}}
        headers = [(b"x-csrf-token", csrf_of(client.get("/enrollment")).encode()), (b"content-type", content_type)]
        result = f"/enrollment/envcheck/runs/{run}/result"
        refused = client.post(result, content=json.dumps(report).encode(), headers=headers)
        assert refused.status_code == 422 and refused.json()["field"] == "checklist.pc_class"
    assert [row["field"] for row in _refusals(portal)] == ["checklist.pc_class"]


def test_a_large_body_is_not_held_for_a_check_and_stalls_no_other_request(portal: Portal) -> None:
    """4 MiB of JSON-looking text to the environment check's upload (16 MiB allowed) was held and walked on the event
    loop for 26 s, a path spelled for each of its items, while every other request waited: a body beyond the portal's
    limit is not held (only file routes take one, and they parse no JSON), and a held one is parsed in the
    threadpool."""
    size = 4 * 1024 * 1024
    key_length = size // 2
    body = b'{"' + b"k" * key_length + b'":[' + b",".join([b'""'] * ((size - key_length) // 3)) + b"]}"
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
        headers = {**_script_headers(client), "content-type": "text/plain"}
        run = client.post("/enrollment/envcheck/runs", headers=headers).json()["run"]
        uploaded: list[httpx.Response] = []
        upload = threading.Thread(
            target=lambda: uploaded.append(
                client.post("/enrollment/envcheck/upload", params={"run": run}, content=body, headers=headers)
            )
        )
        upload.start()
        with portal.client() as other:
            started = time.monotonic()
            assert other.get("/login").status_code == 200
            login_seconds = time.monotonic() - started
        upload.join()
    assert login_seconds < 3 and uploaded[0].status_code == 200, (login_seconds, uploaded)


def test_refusals_behind_the_reverse_proxy_are_folded_per_browser_address(
    tmp_path: Path, db_url: str, engine: Engine
) -> None:
    """Keyed on the TCP peer, every refusal behind the proxy folded into one row that kept only the latest field and
    target: one client's refusals hid another's. The proven proxy's forwarded address keys them, as audit rows name a
    person's address everywhere; a forged one without the proxy's proof keys on the peer still."""
    with serving_portal(
        tmp_path, db_url, engine, kind=Portal, passwords=PASSWORDS, groups=GROUPS, trusted_proxy=True
    ) as portal:
        with portal.client() as proxy:
            for browser, field in (("198.51.100.7", "a"), ("198.51.100.8", "b")):
                forwarded = {"X-Forwarded-For": browser, "X-Sohogw-Proxy-Secret": PROXY_SECRET}
                assert proxy.get("/login", params={field: "\x00"}, headers=forwarded).status_code == 422
            forged = proxy.get("/login", params={"c": "\x00"}, headers={"X-Forwarded-For": "198.51.100.9"})
            assert forged.status_code == 422
        with session_scope(portal.engine) as db:
            rows = db.exec(
                select(AuditEvent).where(AuditEvent.action == "http.unstorable_text").order_by(col(AuditEvent.seq))
            ).all()
            assert [(row.source, json.loads(row.detail)["field"]) for row in rows] == [
                ("198.51.100.7", "a"),
                ("198.51.100.8", "b"),
                ("127.0.0.1", "c"),
            ]


def test_a_standby_email_longer_than_its_column_is_refused_on_the_page_as_typed(portal: Portal) -> None:
    long_email = "a" * 250 + "@example.com"
    with signed_in(portal, "sup1") as client:
        fields = {"login": "applicant1", "email": long_email, "phone": ""}
        refused = post_form(client, "/supervision/surge", "/supervision/standby", fields)
        assert refused.status_code == 422
        assert page_error(refused) == "“email” is longer than the 255 characters it can hold. Shorten it and try again."
        assert f'value="{long_email}"' in refused.text
        fields["email"] = "applicant1@example.com"
        assert post_form(client, "/supervision/surge", "/supervision/standby", fields).status_code == 303


def test_a_bulletin_audience_longer_than_its_column_is_refused_on_the_page_as_typed(portal: Portal) -> None:
    with signed_in(portal, "sup1") as client:
        fields = {"kind": "bulletin", "title": "Rota", "body": "New rota.", "priority": "normal", "audience": "x" * 256}
        refused = post_form(client, "/supervision/bulletins", "/supervision/bulletins", fields)
        assert refused.status_code == 422 and "“audience”" in page_error(refused)
        assert 'value="' + "x" * 256 + '"' in refused.text
        fields["audience"] = "SOHO-Agents"
        assert post_form(client, "/supervision/bulletins", "/supervision/bulletins", fields).status_code == 303


def test_a_policy_comment_longer_than_its_column_is_refused_with_the_document_kept_and_audited(
    portal: Portal,
) -> None:
    document = policy_text() + "# reviewed\n"
    with signed_in(portal, "admin1") as client:
        for confirmed in ("", "yes"):
            fields = {"document": document, "comment": "c" * 513, "confirmed": confirmed}
            refused = post_form(client, "/security-admin/policy", "/security-admin/policy/import", fields)
            assert refused.status_code == 422
            assert "“comment” is longer than the 512 characters it can hold" in refused.text
            assert "# reviewed" in refused.text and 'value="' + "c" * 513 + '"' in refused.text
        fields["comment"] = "c" * 512
        assert post_form(client, "/security-admin/policy", "/security-admin/policy/import", fields).status_code == 303
    with session_scope(portal.engine) as db:
        refusals = db.exec(
            select(AuditEvent).where(AuditEvent.action == "policy.import", AuditEvent.outcome == "refused")
        ).all()
        assert len(refusals) == 2
        assert db.exec(select(PolicyVersion.comment).order_by(col(PolicyVersion.version).desc())).first() == "c" * 512


def test_a_url_encoded_form_larger_than_the_portal_limit_is_refused_not_held(portal: Portal) -> None:
    """The environment check's upload takes 16 MiB; a URL-encoded body that large was held whole and parsed as a form
    for the check (~880 MiB and seconds of CPU at 16 MiB), though no route of ours takes such a form: refused, 413,
    and an upload as a file still goes through."""
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
        headers = _script_headers(client)
        run = client.post("/enrollment/envcheck/runs", headers=headers).json()["run"]
        form = {**headers, "content-type": "application/x-www-form-urlencoded"}
        refused = client.post(
            "/enrollment/envcheck/upload", params={"run": run}, content=b"ab&" * 200_000, headers=form
        )
        assert refused.status_code == 413 and refused.json()["error"] == "form_too_large"
        as_file = {**headers, "content-type": "application/octet-stream"}
        uploaded = client.post(
            "/enrollment/envcheck/upload", params={"run": run}, content=b"ab&" * 200_000, headers=as_file
        )
        assert uploaded.status_code == 200, uploaded.text


@pytest.mark.parametrize("charset", ["base64", "hex", "rot13"])
def test_a_multipart_charset_that_is_no_text_encoding_is_read_as_starlette_reads_it(
    portal: Portal, charset: str
) -> None:
    """``codecs.lookup`` knows ``base64``, but bytes cannot be decoded with it: Starlette falls back to latin-1, the
    check answered 500 (LookupError)."""
    with signed_in(portal, "applicant1") as client:
        csrf = csrf_of(client.get("/enrollment"))
        boundary = "b0undary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="csrf"\r\n\r\n{csrf}\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="callback_number"\r\n\r\n\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        kind = f"multipart/form-data; boundary={boundary}; charset={charset}"
        answer = client.post("/enrollment/apply", content=body, headers={"content-type": kind})
    assert answer.status_code == 303, page_error(answer)


def test_json_nested_deeper_than_python_parses_is_refused_as_not_an_object(portal: Portal) -> None:
    """The environment check's result caught only ValueError: 100,000 levels answered 500 (RecursionError)."""
    with signed_in(portal, "applicant1") as client:
        assert post_form(client, "/enrollment", "/enrollment/apply", {"callback_number": ""}).status_code == 303
        headers = _script_headers(client)
        run = client.post("/enrollment/envcheck/runs", headers=headers).json()["run"]
        deep = b"[" * 100_000 + b"]" * 100_000
        answer = client.post(
            f"/enrollment/envcheck/runs/{run}/result",
            content=deep,
            headers={**headers, "content-type": "application/json"},
        )
    assert answer.status_code == 422, answer.text
