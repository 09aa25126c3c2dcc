"""``enclave users``: principals and their API keys (shown once, stored as hashes)."""

from __future__ import annotations

import getpass
from typing import TYPE_CHECKING, Annotated

import typer

from core.choices import ROLES
from core.names import clean_user_id, printable
from serve.cli.common import GroupOpt, JsonOpt, container_scope, out, run_cli

if TYPE_CHECKING:
    from core.users import User

users_app = typer.Typer(help="Users of the HTTP API and their API keys.", no_args_is_help=True)
UserArg = Annotated[str, typer.Argument(help="The user's id, e.g. an e-mail address.")]


@users_app.command("add")
def add(
    user: UserArg,
    group: GroupOpt = None,
    role: Annotated[list[str] | None, typer.Option(
        "--role", "-r", help=f"Role (repeatable): {', '.join(ROLES)}. Default: employee.")] = None,
) -> None:
    """Create a user (or update their groups and roles) and print a new API key, last."""
    from core.users import UserBook, validate_roles

    def work() -> tuple[str, tuple[str, ...], str]:
        from core.admin_records import record_admin

        # Printed as stored: normalised under the rule for names (core/names.py).
        user_id, groups = UserBook.clean(user, group or ())
        with container_scope() as c:
            key = c.users.add(user_id, groups, role or ())
            record_admin(c.audit, getpass.getuser(), "user.key_issued", "cli", user=user_id,
                         groups=list(groups), roles=list(validate_roles(role or ())),
                         key_prefix=key[:10])
            return user_id, groups, key

    user_id, groups, key = run_cli(work)
    out.print(f"user {user_id}: groups {', '.join(groups) or '(public only)'}; "
              f"roles {', '.join(validate_roles(role or ()))}")
    out.print("API key (shown only now; send it as 'Authorization: Bearer <key>'):")
    out.print(key)


@users_app.command("revoke")
def revoke(user: UserArg) -> None:
    """Revoke a user and every key of theirs."""

    def work() -> int:
        from core.admin_records import record_admin

        with container_scope() as c:
            keys = c.users.revoke(clean_user_id(user))
            record_admin(c.audit, getpass.getuser(), "user.revoked", "cli", user=user, keys_revoked=keys)
            return keys

    keys = run_cli(work)
    out.print(f"revoked {user} ({keys} active key(s))")


@users_app.command("list")
def list_users(as_json: JsonOpt = False) -> None:
    """Users with their groups, roles and the first characters of their active keys."""

    def work() -> list[User]:
        with container_scope() as c:
            return c.users.users()

    users = run_cli(work)
    if as_json:
        out.print_json(data={"users": [
            {"user_id": u.user_id, "groups": list(u.groups), "roles": list(u.roles),
             "keys": list(u.keys), "revoked": u.revoked} for u in users]})
        return
    for u in users:
        state = "revoked" if u.revoked else f"keys {', '.join(k + '...' for k in u.keys)}"
        # Names stored before the rule for names may hold what a terminal would act on.
        out.print(f"{printable(u.user_id):<30} groups {printable(','.join(u.groups)) or '-':<20} "
                  f"roles {','.join(u.roles):<22} {state}")
