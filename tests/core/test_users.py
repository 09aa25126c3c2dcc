"""Users and keys on SQLite and PostgreSQL: changes keep keys, one key revokes alone, and
no change (however concurrent) leaves the service without an admin."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path

import pytest

from core.db import Database
from core.errors import LastAdmin, NotFound
from core.users import UserBook
from tests.conftest import pg_database


@pytest.fixture(params=["sqlite", "postgresql"])
def book(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[UserBook]:
    with pg_database() if request.param == "postgresql" else nullcontext() as url:
        db = Database(url or f"sqlite:///{tmp_path / 'users.db'}")
        yield UserBook(db)
        db.close()


def test_a_change_keeps_the_keys_and_a_key_revokes_alone(book: UserBook) -> None:
    first = book.add("ines", ["finance"], ["employee"])
    second = book.add("ines", ["finance"], ["employee"])
    before, after = book.change("ines", groups=["hr", "finance"])
    assert before.groups == ("finance",) and after.groups == ("finance", "hr")
    assert after.roles == ("employee",)  # left out: unchanged
    for key in (first, second):
        principal = book.authenticate(key)
        assert principal is not None and principal.groups == ("finance", "hr")
    keys = book.keys("ines")
    assert [k.shown for k in keys] == [first[:10], second[:10]]
    book.revoke_key("ines", keys[0].key_id)
    assert book.authenticate(first) is None and book.authenticate(second) is not None
    with pytest.raises(NotFound):
        book.revoke_key("ines", keys[0].key_id)  # not active any more
    with pytest.raises(NotFound):
        book.revoke_key("someone-else", keys[1].key_id)  # not theirs
    with pytest.raises(NotFound):
        book.change("nobody", roles=["admin"])
    assert book.user("ines").keys == (second[:10],)


def test_the_last_admin_cannot_lose_the_role_or_be_revoked(book: UserBook) -> None:
    book.add("root", [], ["admin"])
    book.add("emma", [], ["employee"])
    for attempt in (lambda: book.change("root", roles=["employee"]),
                    lambda: book.revoke("root"),
                    lambda: book.add("root", [], ["auditor"])):
        with pytest.raises(LastAdmin, match="root is the last admin"):
            attempt()
    assert book.user("root").roles == ("admin",) and not book.user("root").revoked
    book.change("emma", roles=["admin", "employee"])
    book.change("root", roles=["auditor"])  # emma is an admin now
    with pytest.raises(LastAdmin):
        book.revoke("emma")


def test_two_admins_removing_each_other_at_once_leave_one(book: UserBook) -> None:
    """Each checks that another admin remains; read under the write lock, the second sees
    the first's change and is refused, whichever comes first."""
    for _ in range(3):
        book.add("ana", [], ["admin"])
        book.add("ben", [], ["admin"])
        start = threading.Barrier(2)
        outcomes: dict[str, str] = {}

        def demote(user: str, start: threading.Barrier = start,
                   outcomes: dict[str, str] = outcomes) -> None:
            start.wait()
            try:
                book.change(user, roles=["employee"])
                outcomes[user] = "done"
            except LastAdmin:
                outcomes[user] = "refused"

        threads = [threading.Thread(target=demote, args=(u,)) for u in ("ana", "ben")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert sorted(outcomes.values()) == ["done", "refused"], outcomes
        admins = [u.user_id for u in book.users() if "admin" in u.roles and not u.revoked]
        assert len(admins) == 1
