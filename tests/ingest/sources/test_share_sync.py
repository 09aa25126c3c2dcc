"""SMB shares and IMAP mailboxes synced end to end: real smbd and Dovecot on loopback, the
real pipeline (inline jobs, SQLite, the real embedder and store). The share's permissions
decide who finds a file, and follow it when it moves to another group; a mailbox's
messages and attachments become documents with the message's headers kept; wrong
credentials change nothing already ingested."""

from __future__ import annotations

import os
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from core.container import Container
from core.jobs import DELETED, DONE, ITEM_DONE
from core.sources import Source
from core.types import Principal
from tests.ingest.sources import samba
from tests.ingest.sources.dovecot import PASSWORD, USER, Dovecot

FINANCE_MAP = {f"group:{samba.FINANCE}": ("finance",),
               f"group:{samba.ENGINEERING}": ("engineering",), "other": ("@public",)}


def readers(c: Container, query: str, *groups: str) -> set[str]:
    hits = c.searcher.search(query, Principal("u", tuple(groups)), k=10)
    return {str(h.chunk.meta.get("display")) for h in hits}


def statuses(c: Container, job_id: str) -> dict[str, str]:
    return {i.source.rsplit("/", 1)[-1]: i.status for i in c.jobs.items(job_id, None, limit=100)}


@pytest.mark.skipif(samba.missing() is not None, reason=str(samba.missing()))
def test_a_share_file_moved_to_another_group_moves_its_access(
    c: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    with samba.running_smbd() as server:
        (server.root / "finance").mkdir()
        budget = server.root / "finance" / "budget.txt"
        budget.write_text("The Porto office renovation budget is 80,000 euros.")
        os.chown(budget, 0, samba.grp.getgrnam(samba.FINANCE).gr_gid)
        budget.chmod(0o640)
        (server.root / "welcome.txt").write_text("Welcome to the Porto office wiki.")
        (server.root / "welcome.txt").chmod(0o644)
        monkeypatch.setenv("ENCLAVE_TEST_SMB_PASSWORD", server.password)
        c.sources.add(Source(name="porto", kind="smb", location=server.url(),
                             username=server.username, credentials="env:ENCLAVE_TEST_SMB_PASSWORD",
                             mapping=FINANCE_MAP))
        job = c.job_runner().sync_source("porto")
        assert statuses(c, job.job_id) == {"budget.txt": ITEM_DONE, "welcome.txt": ITEM_DONE}
        connections = c.job_runner().connections
        assert connections is not None and not connections._open  # logged off when it ended
        query = "Porto office renovation budget"
        assert "finance/budget.txt" in readers(c, query, "finance")
        assert "finance/budget.txt" not in readers(c, query, "engineering")

        info = c.registry.find_by_source(server.url("finance/budget.txt"))
        assert info is not None and info.groups == ("finance",)
        os.chown(budget, 0, samba.grp.getgrnam(samba.ENGINEERING).gr_gid)
        job = c.job_runner().sync_source("porto")
        assert statuses(c, job.job_id)["budget.txt"] == ITEM_DONE
        assert "finance/budget.txt" in readers(c, query, "engineering")
        assert "finance/budget.txt" not in readers(c, query, "finance")
        after = c.registry.get(info.doc_id)
        assert after is not None and after.active_version == info.active_version  # not re-embedded

        # Wrong credentials: the job says why, and nothing already ingested changes.
        monkeypatch.setenv("ENCLAVE_TEST_SMB_PASSWORD", "not-the-password")
        job = c.jobs.get(c.job_runner().sync_source("porto").job_id)
        assert job.status == DONE and job.total == 0
        assert job.error and "logon failed" in job.error and "not-the-password" not in job.error
        assert "finance/budget.txt" in readers(c, query, "engineering")


def contract_mail(tmp_path: Path) -> bytes:
    from serve.cli.demo import write_pdf

    pdf = tmp_path / "contract.pdf"
    write_pdf(pdf, [["Supplier contract for the Braga warehouse",
                     "Deliveries of pallets arrive every Tuesday before noon."]])
    msg = EmailMessage()
    msg["From"] = "Legal Team <legal@example.com>"
    msg["To"] = "archive@example.com"
    msg["Date"] = "Wed, 03 Jun 2026 12:00:00 +0000"
    msg["Subject"] = "Signed supplier contract"
    msg.set_content("The supplier contract for the Braga warehouse is signed and attached.\n")
    msg.add_attachment(pdf.read_bytes(), maintype="application", subtype="pdf", filename="contract.pdf")
    return msg.as_bytes(policy=SMTP)


def test_a_mailbox_syncs_messages_and_attachments_with_their_headers(
    c: Container, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with Dovecot() as server:
        uid = server.append(contract_mail(tmp_path))
        monkeypatch.setenv("ENCLAVE_TEST_IMAP_PASSWORD", PASSWORD)
        c.sources.add(Source(name="legal", kind="imap", location=server.url(), username=USER,
                             credentials="env:ENCLAVE_TEST_IMAP_PASSWORD", groups=("legal",)))
        job = c.jobs.get(c.job_runner().sync_source("legal").job_id)
        assert job.status == DONE and job.counts[ITEM_DONE] == 2, c.jobs.items(job.job_id)
        hits = c.searcher.search("pallets deliveries Tuesday", Principal("u", ("legal",)), k=3)
        attachment = hits[0].chunk.meta
        assert str(attachment["display"]).endswith("contract.pdf")
        meta = attachment["source_meta"]
        assert meta["subject"] == "Signed supplier contract"
        assert meta["from"] == "Legal Team <legal@example.com>"
        assert meta["parent"].endswith(f"/{uid}")
        mail = c.searcher.search("supplier contract signed", Principal("u", ("legal",)), k=5)
        assert any(h.chunk.meta["source_meta"].get("to") == "archive@example.com"
                   and "parent" not in h.chunk.meta["source_meta"] for h in mail)
        assert not c.searcher.search("pallets deliveries Tuesday", Principal("u", ("sales",)))

        server.expunge(uid)
        job = c.jobs.get(c.job_runner().sync_source("legal").job_id)
        assert job.counts[DELETED] == 2
        assert not c.searcher.search("pallets deliveries Tuesday", Principal("u", ("legal",)))
