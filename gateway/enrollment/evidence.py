"""Evidence attached to a stage: files kept in the database, accepted only as a few inert types.

The type is read from the bytes (magic numbers), never from the uploader's name or claim; anything else, an
executable or HTML included, is refused. Files are served back only as downloads with ``nosniff`` (see routes).
"""

import hashlib
import re
import unicodedata
from datetime import datetime
from pathlib import PurePosixPath
from urllib.parse import quote

from sqlmodel import Session

from gateway.audit.service import record
from gateway.enrollment.errors import EvidenceRefused
from gateway.enrollment.models import Application, Evidence, EvidenceKind
from gateway.enrollment.settings import EnrollmentSettings
from gateway.errors import NotFound

_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+", re.UNICODE)
_NOT_PLAIN_ASCII = re.compile(r"[^A-Za-z0-9.\-_]+")


def sniff(content: bytes) -> str | None:
    """The content type the bytes themselves show, or None for anything not on the short list."""
    for magic, content_type in _MAGIC:
        if content.startswith(magic):
            return content_type
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain" if "\x00" not in text else None


def safe_filename(name: str) -> str:
    """A plain file name for the download header: no path, no quotes or control characters."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" .")
    return cleaned[:120] or "evidence"


def download_disposition(filename: str) -> str:
    """The ``Content-Disposition`` of a download: an ASCII ``filename`` for old clients and the real (often
    Chinese) name as ``filename*=UTF-8''…`` (RFC 6266 §4.3, RFC 8187). HTTP headers are Latin-1, so the raw name
    cannot go in a header as it is."""
    name = safe_filename(filename)
    plain = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    path = PurePosixPath(_NOT_PLAIN_ASCII.sub("_", plain))
    stem = path.stem.strip("_.") or "evidence"
    fallback = stem + (path.suffix if path.suffix.strip("_.") else "")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def add_evidence(
    db: Session,
    application: Application,
    stage: str,
    filename: str,
    content: bytes,
    *,
    settings: EnrollmentSettings,
    actor: str,
    now: datetime,
    kind: EvidenceKind = EvidenceKind.FILE,
    summary: str = "",
) -> Evidence:
    if stage not in settings.stages:
        raise EvidenceRefused(f"unknown stage {stage!r}", key="evidence_stage")
    if not content:
        raise EvidenceRefused("the file is empty", key="evidence_empty")
    if len(content) > settings.evidence_max_bytes:
        limit = settings.evidence_max_bytes // 1024
        raise EvidenceRefused(f"the file is larger than {limit} KiB", key="evidence_too_large", kib=limit)
    content_type = "application/json" if kind is EvidenceKind.ENVIRONMENT_CHECK else sniff(content)
    if content_type is None or (kind is EvidenceKind.FILE and content_type not in settings.evidence_types):
        accepted = ", ".join(settings.evidence_types)
        raise EvidenceRefused(f"only these kinds of file are accepted: {accepted}", key="evidence_type", types=accepted)
    evidence = Evidence(
        application_id=application.id or 0,
        stage=stage,
        kind=kind,
        filename=safe_filename(filename),
        content_type=content_type,
        size=len(content),
        sha256=hashlib.sha256(content).hexdigest(),
        content=content,
        summary=summary[:255],
        added_by=actor,
        added_at=now,
    )
    db.add(evidence)
    db.flush()
    record(
        db,
        actor=actor,
        action="enrollment.evidence.add",
        target=application.login,
        outcome=kind.value,
        detail={"application": application.id, "stage": stage, "evidence": evidence.id, "sha256": evidence.sha256},
        clock=lambda: now,
    )
    return evidence


def open_evidence(db: Session, application: Application, evidence_id: int, *, actor: str, now: datetime) -> Evidence:
    """One piece of evidence for HR to download; the read is audited."""
    evidence = db.get(Evidence, evidence_id)
    if evidence is None or evidence.application_id != application.id:
        raise NotFound("no such evidence on this application")
    record(
        db,
        actor=actor,
        action="enrollment.evidence.read",
        target=application.login,
        outcome="read",
        detail={"application": application.id, "evidence": evidence.id},
        clock=lambda: now,
    )
    return evidence
