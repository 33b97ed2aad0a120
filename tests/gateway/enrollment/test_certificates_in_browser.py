"""In a real Chromium, the security admin finishes the job an HR approval started: issues the requested certificate
from the agent's CSR and tunnel key (a bad CSR refused on the page, the pasted key kept), sees it in a table with
headers and a status, bound to the approved person's directory id, downloads it, and revokes it after confirming
(declining changes nothing)."""

import base64
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser, Page, expect
from sqlmodel import select

from gateway.db import session_scope
from gateway.pki.models import IssuedCertificate
from tests.gateway.enrollment.conftest import (
    ONE_DATABASE_KIND,
    Portal,
    give_upns,
    signed_in,
    signed_in_page,
)
from tests.gateway.enrollment.test_pages import _apply, _walk_to_approval

pytestmark = [pytest.mark.e2e, ONE_DATABASE_KIND]


def _admin(browser: Browser, portal: Portal) -> Page:
    return signed_in_page(browser.new_context(base_url=portal.base_url, locale="en-US"), "admin1")


def _csr() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "applicant1")])
    request = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return request.public_bytes(serialization.Encoding.PEM).decode()


def test_issue_a_requested_certificate_then_revoke_it_after_confirming(browser: Browser, portal: Portal) -> None:
    give_upns(portal)
    application_id = _apply(portal)
    with signed_in(portal, "hr1") as hr:
        _walk_to_approval(hr, application_id, portal.settings.enrollment.stages)
    wireguard_key = base64.b64encode(os.urandom(32)).decode()
    admin = _admin(browser, portal)
    admin.goto("/security-admin/certificate-requests")
    form = admin.locator("tr[data-login='applicant1'] form.issue-form")
    form.locator("input[name=upn]").fill("applicant1@corp.example")
    form.locator("input[name=wireguard_key]").fill(wireguard_key)
    form.locator("textarea[name=csr]").fill("not a certificate request")
    form.locator("button").click()
    expect(admin.locator("#error")).to_contain_text("The certificate could not be issued from what was pasted")
    form = admin.locator("tr[data-login='applicant1'] form.issue-form")
    assert form.locator("input[name=wireguard_key]").input_value() == wireguard_key  # kept as pasted

    form.locator("textarea[name=csr]").fill(_csr())
    form.locator("button").click()
    expect(admin.locator("#notice")).to_contain_text("The certificate was issued")
    with session_scope(portal.engine) as db:
        issued = db.exec(select(IssuedCertificate).where(IssuedCertificate.wireguard_key == wireguard_key)).one()
    assert issued.person_id == portal.directory.lookup("applicant1").person_id  # bound to the approved person
    row = admin.locator(f"tr[data-serial='{issued.serial}']")
    expect(row).to_have_attribute("data-status", "valid")
    expect(row).to_have_class("new")
    headers = admin.locator("#certificates thead th").all_inner_texts()
    assert headers[:5] == ["Serial", "Kind", "Holder", "Valid until", "Status"]

    download = admin.request.get(f"/security-admin/certificates/{issued.serial}/download")
    assert download.ok and download.text() == issued.pem

    row.locator("form.revoke select").select_option("affiliationChanged")
    row.locator("form.revoke button").click()
    expect(admin.locator("#confirm-dialog-question")).to_contain_text(f"Revoke certificate {issued.serial}")
    admin.click("#confirm-dialog-no")
    admin.reload()
    expect(admin.locator(f"tr[data-serial='{issued.serial}']")).to_have_attribute("data-status", "valid")
    admin.locator(f"tr[data-serial='{issued.serial}'] form.revoke select").select_option("affiliationChanged")
    admin.locator(f"tr[data-serial='{issued.serial}'] form.revoke button").click()
    admin.click("#confirm-dialog-yes")
    expect(admin.locator("#notice")).to_contain_text("The certificate was revoked")
    expect(admin.locator(f"tr[data-serial='{issued.serial}']")).to_have_attribute("data-status", "revoked")
    with session_scope(portal.engine) as db:
        revoked = db.exec(select(IssuedCertificate).where(IssuedCertificate.serial == issued.serial)).one()
        assert revoked.revocation_reason == "affiliationChanged"
