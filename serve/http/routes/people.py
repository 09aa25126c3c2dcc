"""Routes about people: who the caller is, and (admins) users, their roles, groups and keys.

Every change is an audit record with the admin who made it, as the CLI's are (channel
``api``). Taking the admin role from the last admin, or revoking them, is refused (409).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from core.admin_records import record_admin
from core.errors import InputError
from core.users import UserBook
from serve.http.deps import AdminDep, ContainerDep, PrincipalDep, require_role
from serve.http.people_schemas import (
    KeyIssued,
    KeyOut,
    MeOut,
    UserChange,
    UserCreate,
    UserList,
    UserOut,
)

router = APIRouter(prefix="/v1", tags=["people"])
admin_router = APIRouter(prefix="/v1/admin/users", tags=["people"],
                         dependencies=[Depends(require_role("admin"))])


@router.get("/me", response_model=MeOut)
def me(principal: PrincipalDep) -> MeOut:
    """Who the key or token belongs to: groups, roles, and the web pages those roles open."""
    return MeOut.of(principal)


@admin_router.get("", response_model=UserList)
def list_users(container: ContainerDep) -> UserList:
    """Every user, revoked ones included, with their active keys."""
    book = container.users
    keys = book.keys()
    return UserList(users=[UserOut.of(u, keys) for u in book.users()])


@admin_router.post("", status_code=201, response_model=KeyIssued)
def issue_key(body: UserCreate, container: ContainerDep, caller: AdminDep) -> KeyIssued:
    """Create a user, or give one a new key (their groups and roles set as given). The key
    is in this reply and nowhere else."""
    book = container.users
    user_id, groups = UserBook.clean(body.user_id, body.groups)
    key = book.add(user_id, groups, body.roles)
    user = book.user(user_id)
    record_admin(container.audit, caller.user_id, "user.key_issued", "api", user=user_id,
                 groups=list(user.groups), roles=list(user.roles), key_prefix=key[:10])
    return KeyIssued(**UserOut.of(user, book.keys(user_id)).model_dump(), key=key)


@admin_router.patch("/{user_id}", response_model=UserOut)
def change_user(user_id: str, body: UserChange, container: ContainerDep,
                caller: AdminDep) -> UserOut:
    """Change an active user's groups and/or roles; their keys stay valid and take the
    change from their next request."""
    if body.groups is None and body.roles is None:
        raise InputError("nothing to change: send groups, roles or both")
    book = container.users
    before, after = book.change(user_id, body.groups, body.roles)
    record_admin(container.audit, caller.user_id, "user.changed", "api", user=user_id,
                 groups_before=list(before.groups), groups=list(after.groups),
                 roles_before=list(before.roles), roles=list(after.roles))
    return UserOut.of(book.user(user_id), book.keys(user_id))


@admin_router.post("/{user_id}/revoke", response_model=UserOut)
def revoke_user(user_id: str, container: ContainerDep, caller: AdminDep) -> UserOut:
    """Revoke a user and every key of theirs."""
    book = container.users
    keys = book.revoke(user_id)
    record_admin(container.audit, caller.user_id, "user.revoked", "api", user=user_id,
                 keys_revoked=keys)
    return UserOut.of(book.user(user_id), [])


@admin_router.delete("/{user_id}/keys/{key_id}", response_model=KeyOut)
def revoke_key(user_id: str, key_id: int, container: ContainerDep, caller: AdminDep) -> KeyOut:
    """Revoke one key; the user and their other keys stay."""
    key = container.users.revoke_key(user_id, key_id)
    record_admin(container.audit, caller.user_id, "user.key_revoked", "api", user=user_id,
                 key_prefix=key.shown)
    return KeyOut.of(key)
