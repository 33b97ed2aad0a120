"""Send plain-text mail through the configured SMTP server (smtplib), for alerts and surge call-ins."""

import smtplib
import ssl
from email.message import EmailMessage

from gateway.supervision.errors import MailNotSent
from gateway.supervision.settings import MailSettings


def send_mail(settings: MailSettings, to: list[str], subject: str, body: str) -> None:
    """One message to all of ``to``; refuses clearly when no server is set or the server refuses."""
    if not settings.host:
        raise MailNotSent("no SMTP server is configured (supervision.mail.host); ask an administrator to set one")
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = settings.sender, ", ".join(to), subject
    message.set_content(body)
    try:
        with smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.username and settings.password is not None:
                smtp.login(settings.username, settings.password.get_secret_value())
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as error:
        raise MailNotSent(f"the SMTP server {settings.host}:{settings.port} refused the mail ({error})") from None
