"""What every kind of source (folder, SMB share, IMAP mailbox, intranet site) gives a sync.

A connector lists what the source holds now, each entry with a change signal that is
cheap to read (modification time and size, ETag or Last-Modified, IMAP UIDVALIDITY and
UID) and with who the source says may read it; then fetches one entry at a time into a
scratch folder, where the ordinary parser reads it. A sync compares each signal with the
one recorded at the last sync and fetches only what changed (ingest/sources/sync.py).

A connector raises :class:`core.errors.SourceError` when the source cannot be listed or
read at all (the server is down, the credentials are wrong, TLS fails, the path does not
exist): the sync then deletes nothing and says why on the job. An entry that cannot be
read alone is fetched with an error instead, and fails alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Entry:
    """One document the source holds now."""

    # Stable within the source across syncs: a path relative to the share, a URL, a
    # mailbox, UIDVALIDITY and UID. Never holds credentials.
    key: str
    # Changes whenever the content may have changed; equal signals mean "not changed".
    signal: str
    # What the document is called in enclave: the source of its citations (a path, an
    # smb:// or imap:// location, a URL). Unique across sources; never holds credentials.
    location: str
    # What employees see as its name: a path relative to the share, a page's path, a subject.
    display: str
    # The file name its bytes are parsed as: the extension picks the parser.
    filename: str
    # Who the source says may read it (mapped to enclave groups by the source's mapping):
    # "group:NAME", "user:NAME", "other" (readable by all), or an SMB SID. Empty for kinds
    # whose groups are set on the source (mailbox, website).
    principals: tuple[str, ...] = ()
    # Changes whenever ``principals`` may have changed (mode and owner, a security
    # descriptor's hash); a change alone re-reads permissions without re-embedding.
    access_signal: str = ""
    # Metadata kept with the document: From, To, Date and Subject of a message; the key
    # of the message an attachment belongs to ("parent").
    meta: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fetched:
    """An entry's bytes, written to ``path`` in the scratch folder the sync gave."""

    path: Path
    # Read again at fetch time, so the groups applied are the ones in force now.
    principals: tuple[str, ...] = ()


class Connector(Protocol):
    """One source, opened with its credentials; closed when the sync is done with it."""

    def entries(self) -> Iterator[Entry]:
        """What the source holds now, lazily. Raises SourceError when it cannot be listed
        whole: a listing cut short must not look like documents that were deleted."""
        ...

    def fetch(self, entry: Entry, folder: Path) -> Fetched:
        """The entry's bytes, written under ``folder``. Raises SourceError when the source
        cannot be reached, DocumentError when this one entry cannot be read (gone since
        it was listed, over the size limit)."""
        ...

    def close(self) -> None: ...
