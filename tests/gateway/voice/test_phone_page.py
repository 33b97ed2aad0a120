"""The home agent's phone page (/agent/phone): numbers added and confirmed with the code the SMS gateway received,
refusals explained in the page's language, the callback line's ready toggle.

The portal is the whole app on a real socket, signed in through the trusted proxy with the agent's certificate; the
SMS gateway is a real HTTP receiver. Browser tests drive Debian's Chromium (SQLite only, as the other browser tests);
the form tests run on both databases.
"""

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect
from sqlalchemy import Engine

from gateway.errors import GatewayError
from gateway.voice.dialable import check_number
from gateway.voice.routes.pages import refusal_key
from gateway.voice.settings import VoiceSettings
from gateway.web.i18n import catalog
from tests.gateway.sessions.conftest import GROUPS, PASSWORDS, WG_KEYS, Portal, csrf_of, page_error, sign_in
from tests.gateway.voice.http_apps import Receiver
from tests.support.browser import chromium, sign_in_page
from tests.support.portal import serving_portal
from tests.support.server import serving

EN, ZH = catalog("en"), catalog("zh-CN")


@dataclass
class PhonePortal:
    portal: Portal
    sms: Receiver

    def texted_code(self) -> str:
        match = re.search(r"code is (\d+)", self.sms.bodies()[-1]["text"])
        assert match is not None
        return match.group(1)


@pytest.fixture
def phone(tmp_path: Path, db_url: str, engine: Engine) -> Iterator[PhonePortal]:
    sms = Receiver()
    with serving(sms.app) as sms_url:
        settings = {"sms": {"url": f"{sms_url}/sms"}, "voice": {"code_max_attempts": 2, "callback_at_login": False}}
        with serving_portal(
            tmp_path,
            db_url,
            engine,
            kind=Portal,
            passwords=PASSWORDS,
            groups=GROUPS,
            certified=WG_KEYS,
            trusted_proxy=True,
            settings=settings,
        ) as portal:
            yield PhonePortal(portal, sms)


@pytest.fixture
def agent_page(phone: PhonePortal) -> Iterator[Page]:
    """agent1 signed in from Chromium (the trusted proxy's certificate header on every request)."""
    yield from _signed_in_page(phone, {})


@pytest.fixture
def chinese_agent_page(phone: PhonePortal) -> Iterator[Page]:
    yield from _signed_in_page(phone, {"Accept-Language": "zh-CN,zh;q=0.9"})


def _signed_in_page(phone: PhonePortal, headers: dict[str, str]) -> Iterator[Page]:
    browser: Browser
    with chromium() as browser:
        context = browser.new_context(extra_http_headers={**phone.portal.proxy_headers("agent1"), **headers})
        page = context.new_page()
        sign_in_page(page, "agent1", PASSWORDS["agent1"], phone.portal.base_url)
        expect(page.locator("#welcome")).to_be_visible()
        yield page


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.e2e
def test_agent_adds_a_mobile_number_types_the_texted_code_and_sees_it_confirmed(
    phone: PhonePortal, agent_page: Page
) -> None:
    agent_page.click("#phone-link")
    expect(agent_page.locator("h1")).to_have_text(EN["voice.page.title"])
    agent_page.fill("#new-number", "138 1234 5678")
    agent_page.click("#add")
    row = agent_page.locator("#numbers tr[data-number]")
    expect(row).to_have_attribute("data-state", "awaiting_code")
    expect(row.locator(".masked")).to_have_text("+86 138****5678")
    assert [body["to"] for body in phone.sms.bodies()] == ["+8613812345678"]
    assert "12345678" not in agent_page.content()  # masked everywhere on the page

    row.locator("input[name=code]").fill(phone.texted_code())
    row.locator("form.confirm button").click()
    expect(row).to_have_attribute("data-state", "confirmed")
    expect(row.locator(".state")).to_have_text(EN["voice.number.state.confirmed"])

    agent_page.click("#set-ready")
    expect(agent_page.locator("#leg")).to_have_attribute("data-state", "requested")
    expect(agent_page.locator("#leg")).to_have_attribute("data-ready", "true")
    agent_page.click("#set-not-ready")
    expect(agent_page.locator("#leg")).to_have_attribute("data-ready", "false")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.e2e
def test_premium_and_foreign_numbers_are_refused_with_the_reason_on_the_page(
    phone: PhonePortal, agent_page: Page
) -> None:
    agent_page.goto(f"{phone.portal.base_url}/agent/phone")
    agent_page.fill("#new-number", "+86 168 1234 5")
    agent_page.click("#add")
    expect(agent_page.locator("#error")).to_have_text(EN["voice.refused.never_called"])
    agent_page.fill("#new-number", "+1 415 555 2671")
    agent_page.click("#add")
    expect(agent_page.locator("#error")).to_have_text(EN["voice.refused.foreign"])
    expect(agent_page.locator("#no-numbers")).to_be_visible()
    assert phone.sms.received == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.e2e
def test_page_is_in_chinese_for_a_chinese_browser(phone: PhonePortal, chinese_agent_page: Page) -> None:
    page = chinese_agent_page
    expect(page.locator("#phone-link")).to_have_text(ZH["voice.page.link"])
    page.click("#phone-link")
    expect(page.locator("h1")).to_have_text("我的回拨电话")
    page.fill("#new-number", "+8616812345")
    page.click("#add")
    expect(page.locator("#error")).to_have_text(ZH["voice.refused.never_called"])


@contextmanager
def _signed_in_client(phone: PhonePortal) -> Iterator[httpx.Client]:
    with phone.portal.client() as client:
        answer = sign_in(client, "agent1", headers=phone.portal.proxy_headers("agent1"))
        assert answer.status_code == 303, page_error(answer)
        yield client


def _post(client: httpx.Client, path: str, **form: str) -> httpx.Response:
    csrf = csrf_of(client.get("/agent/phone", headers={"accept": "text/html"}))
    return client.post(path, data={"csrf": csrf, **form}, headers={"accept": "text/html"})


def test_wrong_codes_count_across_page_posts_until_the_limit(phone: PhonePortal) -> None:
    with _signed_in_client(phone) as client:
        assert _post(client, "/agent/phone/numbers", number="+8613812345678").status_code == 303
        number_id = re.search(r'data-number="(\d+)"', client.get("/agent/phone").text)
        assert number_id is not None
        confirm = f"/agent/phone/numbers/{number_id.group(1)}/confirm"
        wrong = "000000" if phone.texted_code() != "000000" else "111111"
        for _ in range(2):
            refused = _post(client, confirm, code=wrong)
            assert refused.status_code == 422 and page_error(refused) == EN["voice.refused.wrong_code"]
        late = _post(client, confirm, code=phone.texted_code())
        assert page_error(late) == EN["voice.refused.too_many_codes"]
        assert 'data-state="awaiting_code"' in client.get("/agent/phone").text


def test_ready_without_a_confirmed_number_says_to_add_one(phone: PhonePortal) -> None:
    with _signed_in_client(phone) as client:
        refused = _post(client, "/agent/phone/ready", ready="true")
    assert refused.status_code == 422 and page_error(refused) == EN["voice.refused.no_number"]


def test_a_form_without_the_session_secret_is_refused_and_nothing_is_texted(phone: PhonePortal) -> None:
    with _signed_in_client(phone) as client:
        forged = client.post("/agent/phone/numbers", data={"number": "+8613812345678", "csrf": "forged"})
        assert forged.status_code == 403
        assert 'id="no-numbers"' in client.get("/agent/phone").text
    assert phone.sms.received == []


def test_a_removed_number_leaves_the_page(phone: PhonePortal) -> None:
    with _signed_in_client(phone) as client:
        _post(client, "/agent/phone/numbers", number="13812345678")
        number_id = re.search(r'data-number="(\d+)"', client.get("/agent/phone").text)
        assert number_id is not None
        assert _post(client, f"/agent/phone/numbers/{number_id.group(1)}/remove").status_code == 303
        assert 'id="no-numbers"' in client.get("/agent/phone").text


@pytest.mark.parametrize(
    ("number", "key"),
    [
        ("not a number", "voice.refused.not_a_number"),
        ("110", "voice.refused.special_service"),
        ("+86 138 1234", "voice.refused.invalid"),
        ("+8616812345", "voice.refused.never_called"),
        ("4001234567", "voice.refused.never_called"),
        ("+14155552671", "voice.refused.foreign"),
    ],
)
def test_every_number_refusal_has_its_own_translated_message(number: str, key: str) -> None:
    with pytest.raises(GatewayError) as refused:
        check_number(number, VoiceSettings())
    assert refusal_key(refused.value) == key
    assert key in ZH


def test_a_type_outside_the_policy_has_its_own_message() -> None:
    with pytest.raises(GatewayError) as refused:
        check_number("+8613812345678", VoiceSettings(allowed_types=["fixed_line"]))
    assert refusal_key(refused.value) == "voice.refused.outside_policy"
