"""The IMAP connector against a real Dovecot (tests/ingest/sources/dovecot.py), started once
for the module: what it lists, what it fetches, what it never downloads or changes."""

from __future__ import annotations

import base64
import email
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from core.errors import SourceError, TooLarge, UnreadableFile
from ingest.parse import parse_file
from ingest.sources.base import Entry
from ingest.sources.imap import ImapConnector
from serve.cli.demo import write_pdf
from tests.ingest.sources.dovecot import DOVECOT, PASSWORD, USER, Dovecot, free_port

pytestmark = pytest.mark.skipif(DOVECOT is None, reason="Dovecot is not installed (dovecot-imapd)")

BIG = 50 * 2**20  # the big attachment, decoded
LIMIT = 10 * 2**20


def plain_message() -> bytes:
    return (
        b"From: Alice Example <alice@example.com>\r\n"
        b"To: Bob Example <bob@example.com>, carol@example.com\r\n"
        b"Date: Mon, 01 Jun 2026 09:30:00 +0200\r\n"
        b"Subject: Quarterly numbers\r\n"
        b"Message-ID: <q1@example.com>\r\n"
        b"\r\n"
        b"The quarterly revenue grew by twelve percent.\r\n"
    )


def encoded_message() -> bytes:
    return (
        b"From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.com>\r\n"
        b"To: bob@example.com\r\n"
        b"Date: Tue, 02 Jun 2026 08:00:00 +0000\r\n"
        b"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        b"Das Wetter ist sch=C3=B6n.\r\n"
    )


def attachments_message(pdf: bytes) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Alice Example <alice@example.com>"
    msg["To"] = "Bob Example <bob@example.com>"
    msg["Date"] = "Wed, 03 Jun 2026 12:00:00 +0000"
    msg["Subject"] = "Signed contract"
    msg.set_content("Please find the signed contract attached.\n")
    msg.add_alternative("<p>Please find the <b>signed contract</b> attached.</p>\n", subtype="html")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename="contract.pdf")
    # A non-ASCII name goes out RFC 2231 encoded (filename*=utf-8''...).
    msg.add_attachment("Remember the budget meeting on Friday.\n", filename="Notizen für Bob.txt")
    msg.add_attachment(b"MZ\x90\x00not really a program", maintype="application",
                       subtype="octet-stream", filename="setup.exe")
    msg.add_attachment("A path in a name must not leave the scratch folder.\n",
                       filename="../../etc/plan.txt")
    return msg.as_bytes(policy=policy.SMTP)


def big_message() -> bytes:
    line = b"A" * 76 + b"\r\n"  # base64 of zeros: 57 bytes a line
    lines = -(-BIG // 57)
    return (
        b"From: Alice Example <alice@example.com>\r\n"
        b"To: Bob Example <bob@example.com>\r\n"
        b"Date: Thu, 04 Jun 2026 07:00:00 +0000\r\n"
        b"Subject: Disk image\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b1"\r\n'
        b"\r\n"
        b"--b1\r\n"
        b"Content-Type: text/plain; charset=us-ascii\r\n"
        b"\r\n"
        b"The disk image of the build server is attached.\r\n"
        b"--b1\r\n"
        b'Content-Type: application/octet-stream; name="disk.img"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: attachment; filename="disk.img"\r\n'
        b"\r\n" + line * lines + b"--b1--\r\n"
    )


def simple(subject: str, body: str) -> bytes:
    return (f"From: ops@example.com\r\nTo: bob@example.com\r\nDate: Fri, 05 Jun 2026 10:00:00 +0000\r\n"
            f"Subject: {subject}\r\n\r\n{body}\r\n").encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dovecot]:
    pdf = tmp_path_factory.mktemp("pdf") / "contract.pdf"
    write_pdf(pdf, [["Contract", "The contract runs until March 2031."]])
    with Dovecot() as dovecot:
        assert dovecot.append(plain_message()) == 1
        assert dovecot.append(encoded_message()) == 2
        assert dovecot.append(attachments_message(pdf.read_bytes())) == 3
        assert dovecot.drop(big_message()) == 4
        yield dovecot


def connect(server: Dovecot, folder: str = "INBOX", *, include: tuple[str, ...] = (),
            exclude: tuple[str, ...] = (), max_bytes: int = LIMIT) -> ImapConnector:
    return ImapConnector(server.url(folder), username=USER, password=PASSWORD, include=include,
                         exclude=exclude, max_bytes=max_bytes)


@pytest.fixture
def inbox(server: Dovecot) -> Iterator[ImapConnector]:
    with connect(server, exclude=("*.exe",)) as connector:
        yield connector


def by_key(entries: list[Entry]) -> dict[str, Entry]:
    return {e.key: e for e in entries}


def test_lists_messages_and_attachments(server: Dovecot, inbox: ImapConnector) -> None:
    v = server.uidvalidity()
    base = f"imap://127.0.0.1:{server.port}/INBOX/{v}"
    entries = list(inbox.entries())
    got = [(e.key, e.display, e.filename, e.location, e.signal) for e in entries]
    assert got == [
        (f"INBOX/{v}/1", "Quarterly numbers", "1.eml", f"{base}/1", f"{v}:1"),
        (f"INBOX/{v}/2", "Grüße aus München", "2.eml", f"{base}/2", f"{v}:2"),
        (f"INBOX/{v}/3", "Signed contract", "3.eml", f"{base}/3", f"{v}:3"),
        (f"INBOX/{v}/3/2-contract.pdf", "Signed contract / contract.pdf", "contract.pdf",
         f"{base}/3/2", f"{v}:3"),
        (f"INBOX/{v}/3/3-Notizen für Bob.txt", "Signed contract / Notizen für Bob.txt",
         "Notizen für Bob.txt", f"{base}/3/3", f"{v}:3"),
        (f"INBOX/{v}/3/5-plan.txt", "Signed contract / plan.txt", "plan.txt", f"{base}/3/5", f"{v}:3"),
        (f"INBOX/{v}/4", "Disk image", "4.eml", f"{base}/4", f"{v}:4"),
        (f"INBOX/{v}/4/2-disk.img", "Disk image / disk.img", "disk.img", f"{base}/4/2", f"{v}:4"),
    ]
    found = by_key(entries)
    assert found[f"INBOX/{v}/1"].meta == {
        "from": "Alice Example <alice@example.com>",
        "to": "Bob Example <bob@example.com>, carol@example.com",
        "date": "2026-06-01T09:30:00+02:00",
        "subject": "Quarterly numbers",
    }
    assert found[f"INBOX/{v}/2"].meta == {
        "from": "Jürgen Müller <juergen@example.com>", "to": "bob@example.com",
        "date": "2026-06-02T08:00:00+00:00", "subject": "Grüße aus München",
    }
    assert found[f"INBOX/{v}/3/2-contract.pdf"].meta == {
        "from": "Alice Example <alice@example.com>", "to": "Bob Example <bob@example.com>",
        "date": "2026-06-03T12:00:00+00:00", "subject": "Signed contract", "parent": f"INBOX/{v}/3",
    }
    for entry in entries:
        assert entry.principals == ()
        assert USER not in entry.location and PASSWORD not in entry.location
    # Listed again: the same signals, so a sync fetches nothing.
    assert [(e.key, e.signal) for e in inbox.entries()] == [(e.key, e.signal) for e in entries]


def test_include_picks_attachments_by_name(server: Dovecot) -> None:
    with connect(server, include=("*.PDF",)) as connector:
        names = [e.filename for e in connector.entries()]
    assert names == ["1.eml", "2.eml", "3.eml", "contract.pdf", "4.eml"]


def test_fetches_the_mail_text_without_its_attachments(server: Dovecot, inbox: ImapConnector,
                                                       tmp_path: Path) -> None:
    found = by_key(list(inbox.entries()))
    v = server.uidvalidity()
    fetched = inbox.fetch(found[f"INBOX/{v}/3"], tmp_path)
    assert fetched.path == tmp_path / "3.eml"
    assert fetched.principals == ()
    message = email.message_from_bytes(fetched.path.read_bytes(), policy=policy.default)
    assert message["Subject"] == "Signed contract"
    assert message["From"] == "Alice Example <alice@example.com>"
    assert [p.get_content_type() for p in message.walk()] == [
        "multipart/alternative", "text/plain", "text/html"]
    parsed = parse_file(fetched.path, max_bytes=LIMIT, max_pages=100)
    assert "Please find the signed contract attached." in parsed.text
    assert "March 2031" not in parsed.text  # the PDF is a document of its own

    encoded = inbox.fetch(found[f"INBOX/{v}/2"], tmp_path)
    assert "Das Wetter ist schön." in parse_file(encoded.path, max_bytes=LIMIT, max_pages=100).text
    plain = inbox.fetch(found[f"INBOX/{v}/1"], tmp_path)
    assert plain.path.read_bytes() == plain_message()  # a one-part mail comes whole


def test_fetches_attachments_decoded(server: Dovecot, inbox: ImapConnector, tmp_path: Path) -> None:
    found = by_key(list(inbox.entries()))
    v = server.uidvalidity()
    pdf = inbox.fetch(found[f"INBOX/{v}/3/2-contract.pdf"], tmp_path)
    assert pdf.path == tmp_path / "contract.pdf"
    assert pdf.path.read_bytes().startswith(b"%PDF-1.4")
    assert "The contract runs until March 2031." in parse_file(pdf.path, max_bytes=LIMIT, max_pages=10).text
    notes = inbox.fetch(found[f"INBOX/{v}/3/3-Notizen für Bob.txt"], tmp_path)
    assert notes.path.read_text() == "Remember the budget meeting on Friday.\n"
    plan = inbox.fetch(found[f"INBOX/{v}/3/5-plan.txt"], tmp_path)
    assert plan.path == tmp_path / "plan.txt"


def test_big_attachment_is_listed_but_never_downloaded(server: Dovecot, tmp_path: Path) -> None:
    v = server.uidvalidity()
    before = len(server.bytes_sent())
    with connect(server) as connector:
        found = by_key(list(connector.entries()))
        big = found[f"INBOX/{v}/4/2-disk.img"]
        with pytest.raises(TooLarge, match=r"^too large: 52\.4 MB is over the 10\.5 MB limit$"):
            connector.fetch(big, tmp_path)
        text = connector.fetch(found[f"INBOX/{v}/4"], tmp_path)
    assert not (tmp_path / "disk.img").exists()
    message = email.message_from_bytes(text.path.read_bytes(), policy=policy.default)
    assert message.get_content().strip() == "The disk image of the build server is attached."
    sent = server.wait_sessions(before + 1)[before]
    assert sent < 100_000, f"the server sent {sent} bytes: the attachment was downloaded"


def test_reading_marks_nothing_seen(server: Dovecot, inbox: ImapConnector, tmp_path: Path) -> None:
    for entry in inbox.entries():
        if not entry.filename.endswith(".img"):
            inbox.fetch(entry, tmp_path)
    flags = server.flags()
    assert sorted(flags) == [1, 2, 3, 4]
    assert not any("Seen" in f for f in flags.values()), flags


def test_new_and_expunged_messages(server: Dovecot, tmp_path: Path) -> None:
    server.create("Churn")
    first = server.append(simple("First", "one"), "Churn")
    second = server.append(simple("Second", "two"), "Churn")
    with connect(server, "Churn") as connector:
        keys = [e.key for e in connector.entries()]
        v = server.uidvalidity("Churn")
        assert keys == [f"Churn/{v}/{first}", f"Churn/{v}/{second}"]
        listed = list(connector.entries())
        third = server.append(simple("Third", "three"), "Churn")
        # The same open connection sees new mail at the next listing.
        assert [e.key for e in connector.entries()] == [*keys, f"Churn/{v}/{third}"]
        server.expunge(first, "Churn")
        assert [e.key for e in connector.entries()] == [f"Churn/{v}/{second}", f"Churn/{v}/{third}"]
        with pytest.raises(UnreadableFile, match="gone"):
            connector.fetch(listed[0], tmp_path)


def test_a_mail_that_is_only_an_attachment(server: Dovecot, tmp_path: Path) -> None:
    server.create("Scans")
    scan = (b"From: scanner@example.com\r\nTo: bob@example.com\r\nSubject: Scan\r\n"
            b"Date: Fri, 05 Jun 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: application/pdf; name="scan.pdf"\r\nContent-Transfer-Encoding: base64\r\n'
            b'Content-Disposition: attachment; filename="scan.pdf"\r\n\r\n'
            + base64.encodebytes(b"%PDF-1.4 not much of a scan").replace(b"\n", b"\r\n"))
    uid = server.append(scan, "Scans")
    v = server.uidvalidity("Scans")
    with connect(server, "Scans") as connector:
        message, attachment = connector.entries()
        assert (message.key, attachment.key) == (f"Scans/{v}/{uid}", f"Scans/{v}/{uid}/1-scan.pdf")
        assert connector.fetch(attachment, tmp_path).path.read_bytes() == b"%PDF-1.4 not much of a scan"
        text = email.message_from_bytes(connector.fetch(message, tmp_path).path.read_bytes())
    assert text["Subject"] == "Scan"
    assert text.get_content_type() == "text/plain"
    assert text.get_payload() == ""


def test_a_dropped_connection_is_opened_again(server: Dovecot, tmp_path: Path) -> None:
    with connect(server) as connector:
        first = next(iter(connector.entries()))
        assert connector._conn is not None
        connector._conn.shutdown()  # as a server does with a connection idle too long
        assert connector.fetch(first, tmp_path).path.read_bytes() == plain_message()


def test_folder_names_in_modified_utf7(server: Dovecot) -> None:
    server.create("Ablage &ANw-")  # "Ablage Ü"
    # A subject in raw UTF-8, as some mailers send it, instead of RFC 2047 words.
    uid = server.append(simple("Bericht über Q3", "filed away"), "Ablage &ANw-")
    with connect(server, "Ablage%20%C3%9C") as connector:
        (entry,) = connector.entries()
    v = server.uidvalidity("Ablage &ANw-")
    assert entry.key == f"Ablage Ü/{v}/{uid}"
    assert entry.location == f"imap://127.0.0.1:{server.port}/Ablage%20%C3%9C/{v}/{uid}"
    assert entry.display == entry.meta["subject"] == "Bericht über Q3"


def test_wrong_password() -> None:
    wrong = "hunter2-not-it"
    # A server of its own: Dovecot delays the next logins from an address that failed one.
    with Dovecot() as server:
        connector = ImapConnector(server.url(), username=USER, password=wrong)
        with pytest.raises(SourceError) as caught:
            list(connector.entries())
    message = str(caught.value)
    assert message.startswith(f"imap://127.0.0.1:{server.port}: login failed: ")
    assert "Authentication failed" in message
    assert wrong not in message and wrong not in repr(caught.value.__cause__)


def test_missing_folder(server: Dovecot) -> None:
    with connect(server, "Nope") as connector, pytest.raises(SourceError, match="'Nope'"):
        list(connector.entries())


def test_server_down() -> None:
    connector = ImapConnector(f"imap://127.0.0.1:{free_port()}/INBOX", username=USER, password=PASSWORD,
                              timeout_s=5)
    with pytest.raises(SourceError, match=r"^imap://127\.0\.0\.1:\d+: connection refused$"):
        list(connector.entries())
    with pytest.raises(SourceError, match="connection refused"):
        connector.fetch(Entry(key="INBOX/1/1", signal="1:1", location="", display="", filename="1.eml"),
                        Path("/nonexistent"))


@pytest.mark.parametrize("url", ["http://mail.example.com/INBOX", "imap:///INBOX",
                                 "imap://alice:pw@mail.example.com/INBOX"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(SourceError):
        ImapConnector(url, username=USER, password=PASSWORD)


def test_tls() -> None:
    with Dovecot(tls=True) as server:
        server.append(simple("Over TLS", "secret"))
        strict = ImapConnector(server.url(tls=True), username=USER, password=PASSWORD)
        refused = r"TLS failed: certificate verify failed: self-signed certificate$"
        with pytest.raises(SourceError, match=refused):
            list(strict.entries())
        with ImapConnector(server.url(tls=True), username=USER, password=PASSWORD,
                           verify=False) as lax:
            assert [e.display for e in lax.entries()] == ["Over TLS"]
