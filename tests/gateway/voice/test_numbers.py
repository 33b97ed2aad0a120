"""The callback-number registry on both databases: codes, approval, HR vetting, masking in audit."""

from datetime import datetime, timedelta

import pytest
from sqlmodel import Session, select

from gateway.audit.models import AuditEvent
from gateway.errors import Conflict
from gateway.voice.errors import CodeRefused, TooManyCodes
from gateway.voice.models import CallbackNumber, NumberStatus
from gateway.voice.numbers import add_number, approve_number, confirm_number, list_numbers, mark_vetted, usable_number
from gateway.voice.settings import VoiceSettings
from tests.gateway.voice.conftest import AGENT_NUMBER, TextedCodes, confirmed_number


def _added(db: Session, settings: VoiceSettings, now: datetime) -> tuple[CallbackNumber, TextedCodes]:
    texts = TextedCodes()
    number = add_number(db, "test:agent1", "agent1", AGENT_NUMBER, settings, texts, actor="agent1", now=now)
    return number, texts


def test_code_is_texted_to_the_number_and_only_its_hash_is_stored(db: Session, now: datetime) -> None:
    number, texts = _added(db, VoiceSettings(), now)
    code = texts.last_code()
    assert texts.sent[0][0] == AGENT_NUMBER and len(code) == 6
    stored = db.get(CallbackNumber, number.id)
    assert stored is not None and stored.code_sha256 is not None
    assert code not in (stored.code_sha256, stored.code_salt)
    assert number.status is NumberStatus.AWAITING_CODE


def test_right_code_confirms_the_number(db: Session, now: datetime) -> None:
    number, texts = _added(db, VoiceSettings(), now)
    assert number.id is not None
    confirmed = confirm_number(
        db, "test:agent1", number.id, texts.last_code(), VoiceSettings(), actor="agent1", now=now
    )
    assert confirmed.status is NumberStatus.CONFIRMED and confirmed.code_sha256 is None
    assert usable_number(db, "test:agent1", VoiceSettings()) == confirmed


def test_wrong_codes_are_counted_and_the_limit_locks_the_code(db: Session, now: datetime) -> None:
    settings = VoiceSettings(code_max_attempts=2)
    number, texts = _added(db, settings, now)
    assert number.id is not None
    wrong = "000000" if texts.last_code() != "000000" else "111111"
    for _ in range(2):
        with pytest.raises(CodeRefused, match="wrong"):
            confirm_number(db, "test:agent1", number.id, wrong, settings, actor="agent1", now=now)
    with pytest.raises(CodeRefused, match="too many"):
        confirm_number(db, "test:agent1", number.id, texts.last_code(), settings, actor="agent1", now=now)


def test_expired_code_is_refused(db: Session, now: datetime) -> None:
    settings = VoiceSettings(code_ttl_seconds=60)
    number, texts = _added(db, settings, now)
    assert number.id is not None
    with pytest.raises(CodeRefused, match="expired"):
        confirm_number(
            db, "test:agent1", number.id, texts.last_code(), settings, actor="agent1", now=now + timedelta(seconds=61)
        )


def test_another_agents_number_cannot_be_confirmed(db: Session, now: datetime) -> None:
    number, texts = _added(db, VoiceSettings(), now)
    assert number.id is not None
    with pytest.raises(Exception, match="no such callback number"):
        confirm_number(db, "test:agent2", number.id, texts.last_code(), VoiceSettings(), actor="agent2", now=now)


def test_changes_wait_for_approval_when_settings_say_so(db: Session, now: datetime) -> None:
    settings = VoiceSettings(changes_need_approval=True)
    number_id = confirmed_number(db, "agent1", AGENT_NUMBER, settings, now)
    assert db.get(CallbackNumber, number_id).status is NumberStatus.PENDING_APPROVAL  # type: ignore[union-attr]
    assert usable_number(db, "test:agent1", settings) is None
    approve_number(db, number_id, actor="secadmin", now=now)
    assert usable_number(db, "test:agent1", settings) is not None


def test_only_the_hr_vetted_number_is_used_when_required(db: Session, now: datetime) -> None:
    settings = VoiceSettings(require_hr_vetted=True)
    confirmed_number(db, "agent1", AGENT_NUMBER, settings, now)
    confirmed_number(db, "agent1", "+8613987654321", settings, now + timedelta(minutes=1))
    assert usable_number(db, "test:agent1", settings) is None
    mark_vetted(db, "test:agent1", AGENT_NUMBER, actor="hr1", now=now)
    chosen = usable_number(db, "test:agent1", settings)
    assert chosen is not None and chosen.e164 == AGENT_NUMBER
    assert usable_number(db, "test:agent1", VoiceSettings()).e164 == "+8613987654321"  # type: ignore[union-attr]


def test_a_confirmed_number_cannot_be_added_again(db: Session, now: datetime) -> None:
    confirmed_number(db, "agent1", AGENT_NUMBER, VoiceSettings(), now)
    with pytest.raises(Conflict):
        add_number(db, "test:agent1", "agent1", AGENT_NUMBER, VoiceSettings(), TextedCodes(), actor="agent1", now=now)


def test_numbers_are_masked_in_listings_and_audit(db: Session, now: datetime) -> None:
    confirmed_number(db, "agent1", AGENT_NUMBER, VoiceSettings(), now)
    assert [n.masked for n in list_numbers(db, "test:agent1")] == ["+86 138****5678"]
    rows = db.exec(select(AuditEvent).where(AuditEvent.target == "agent1")).all()
    assert [r.action for r in rows] == ["voice.number.add", "voice.number.confirm"]
    assert all(AGENT_NUMBER not in r.detail and "+86 138****5678" in r.detail for r in rows)


def _refused_texts(db: Session) -> list[AuditEvent]:
    return list(db.exec(select(AuditEvent).where(AuditEvent.outcome == "too_many_codes")).all())


def test_a_new_code_for_the_same_number_waits_for_the_resend_interval(db: Session, now: datetime) -> None:
    settings = VoiceSettings(code_resend_seconds=60)
    number, texts = _added(db, settings, now)
    with pytest.raises(TooManyCodes, match=r"wait 31 s"):
        add_number(
            db, "test:agent1", "agent1", AGENT_NUMBER, settings, texts, actor="agent1", now=now + timedelta(seconds=30)
        )
    assert len(texts.sent) == 1
    [refused] = _refused_texts(db)
    assert refused.actor == "agent1" and "13812345678" not in refused.detail
    again = add_number(
        db, "test:agent1", "agent1", AGENT_NUMBER, settings, texts, actor="agent1", now=now + timedelta(seconds=61)
    )
    assert again.id == number.id and len(texts.sent) == 2


def test_codes_per_hour_bound_the_texts_over_all_numbers(db: Session, now: datetime) -> None:
    settings = VoiceSettings(codes_per_hour=2)
    texts = TextedCodes()
    for minute, raw in enumerate(["+8613812345678", "+8613912345678"]):
        add_number(
            db, "test:agent1", "agent1", raw, settings, texts, actor="agent1", now=now + timedelta(minutes=minute)
        )
    with pytest.raises(TooManyCodes, match=r"2 codes were texted in the last hour"):
        add_number(
            db,
            "test:agent1",
            "agent1",
            "+8613712345678",
            settings,
            texts,
            actor="agent1",
            now=now + timedelta(minutes=5),
        )
    assert len(texts.sent) == 2 and len(_refused_texts(db)) == 1
    add_number(
        db, "test:agent1", "agent1", "+8613712345678", settings, texts, actor="agent1", now=now + timedelta(minutes=61)
    )
    assert len(texts.sent) == 3
