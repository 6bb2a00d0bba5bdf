"""The SMTP adapter against a real SMTP server (aiosmtpd): plain, STARTTLS with AUTH, and how
each failure is classified (4xx and connection problems transient, 5xx permanent)."""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from pathlib import Path

import pytest

from rehab.notifications.transport import (
    FileTransport,
    PermanentError,
    SmtpConfig,
    SmtpTransport,
    TransientError,
    classify,
)
from tests.support.smtp import smtp_server


def message() -> EmailMessage:
    m = EmailMessage()
    m["From"] = "rehab <no-reply@rehab.invalid>"
    m["To"] = "cara@clinic.test"
    m["Subject"] = "[rehab] test"
    m["Message-ID"] = "<test.1@rehab.invalid>"
    m.set_content("hello")
    return m


def test_smtp_urls() -> None:
    plain = SmtpConfig.from_url("smtp://mail.example:2525")
    assert (plain.host, plain.port, plain.tls, plain.starttls, plain.username) == (
        "mail.example", 2525, False, False, None,
    )  # fmt: skip
    submission = SmtpConfig.from_url("smtp://user%40x:p%2Fw@mail.example:587")
    assert submission.starttls and submission.username == "user@x"
    assert submission.password == "p/w"
    assert not SmtpConfig.from_url("smtp://mail.example:587?starttls=0").starttls
    assert SmtpConfig.from_url("smtp://mail.example?starttls=1").starttls
    tls = SmtpConfig.from_url("smtps://mail.example")
    assert tls.tls and tls.port == 465 and not tls.starttls
    with pytest.raises(ValueError):
        SmtpConfig.from_url("http://mail.example")


def test_failures_are_classified() -> None:
    assert isinstance(classify(smtplib.SMTPDataError(451, b"try later")), TransientError)
    assert isinstance(classify(smtplib.SMTPDataError(554, b"rejected")), PermanentError)
    refused = smtplib.SMTPRecipientsRefused({"a@b.c": (550, b"5.1.1 <a@b.c> unknown user")})
    error = classify(refused)
    assert isinstance(error, PermanentError) and "a@b.c" not in error.reason
    assert isinstance(
        classify(smtplib.SMTPRecipientsRefused({"a@b.c": (450, b"busy")})), TransientError
    )
    assert isinstance(classify(ConnectionRefusedError()), TransientError)
    assert isinstance(classify(smtplib.SMTPServerDisconnected()), TransientError)
    assert isinstance(classify(TimeoutError()), TransientError)
    with pytest.raises(KeyError):
        classify(KeyError("a bug is not a delivery failure"))


def test_plain_smtp_replies_and_outage() -> None:
    with smtp_server() as server:
        transport = SmtpTransport(SmtpConfig.from_url(server.url))
        transport.send(message(), "n1")
        (received,) = server.messages
        assert received.rcpt_tos == ["cara@clinic.test"]
        assert received.message["Message-ID"] == "<test.1@rehab.invalid>"

        server.fail_next(1, "451 4.3.0 Try again later")
        with pytest.raises(TransientError, match=r"^451 4\.3\.0"):
            transport.send(message(), "n1")
        server.answer_always("550 5.1.1 <cara@clinic.test> mailbox unavailable")
        with pytest.raises(PermanentError) as refused:
            transport.send(message(), "n1")
        assert refused.value.reason == "550 5.1.1 <address> mailbox unavailable"
        server.answer_always(None)
        server.stop()
        with pytest.raises(TransientError, match="connection refused"):
            transport.send(message(), "n1")
        server.start()
        transport.send(message(), "n1")
        assert len(server.messages) == 2


@pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning")
def test_starttls_with_auth(tmp_path: Path) -> None:
    with smtp_server(tls_dir=tmp_path / "tls", auth=("rehab", "s3cret/pw")) as server:
        SmtpTransport(SmtpConfig.from_url(server.url)).send(message(), "n1")
        assert len(server.messages) == 1
        wrong = server.url.replace("s3cret%2Fpw", "wrong")
        with pytest.raises(TransientError, match="authentication failed: 535"):
            SmtpTransport(SmtpConfig.from_url(wrong)).send(message(), "n1")
        # Without the private CA the certificate is not trusted: a TLS error, retried.
        untrusted = server.url.split("&cafile=")[0]
        with pytest.raises(TransientError, match="TLS error"):
            SmtpTransport(SmtpConfig.from_url(untrusted)).send(message(), "n1")
        assert len(server.messages) == 1


def test_the_file_transport_writes_one_eml_per_message(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    FileTransport(outbox).send(message(), "alert-n7")
    (written,) = outbox.iterdir()
    assert written.name.endswith("-alert-n7.eml")
    assert b"Message-ID: <test.1@rehab.invalid>" in written.read_bytes()
