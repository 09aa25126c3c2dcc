"""``enclave audit``: list, show, export and verify the audit trail; checkpoints; retention."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer

from core.errors import InputError
from serve.cli.common import JsonOpt, container_scope, err, out, run_cli

# Each command imports what it uses: the signing library (cryptography) and the verifier
# are for keygen and verify, not for listing records or for `enclave --help`.
if TYPE_CHECKING:
    from core.audit import Filters, Record
    from core.audit_seal import KeyRing
    from core.audit_verify import Verification
    from core.settings import Settings

EXIT_BROKEN = 4  # verify: the chain is not intact

audit_app = typer.Typer(help="The audit trail: every answer and admin action, hash-chained.",
                        no_args_is_help=True)

UserOpt = Annotated[str | None, typer.Option("--user", help="Only this asker or actor.")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="ISO 8601 time, inclusive.")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="ISO 8601 time, exclusive.")]
TextOpt = Annotated[str | None, typer.Option("--text", help="In the question or the answer.")]
KindOpt = Annotated[str | None, typer.Option("--kind", help="answer, job.submitted, ...")]
RefusedOpt = Annotated[bool | None, typer.Option(
    "--refused/--answered", help="Only refusals, or only answers.", show_default=False)]
UnsupportedOpt = Annotated[bool, typer.Option(
    "--unsupported", help="Only answers with unsupported sentences.")]
OutputOpt = Annotated[Path | None, typer.Option("--output", "-o", help="Write here, not stdout.")]
FeedbackOpt = Annotated[str | None, typer.Option(
    "--feedback", help="Only answers rated up or down (their latest rating), or with any or "
    "no feedback: up, down, any, none.")]


def _filters(user: str | None, since: str | None, until: str | None, text: str | None,
             kind: str | None, refused: bool | None, unsupported: bool,
             feedback: str | None = None) -> Filters:
    from core.audit import FEEDBACK_FILTERS, Filters

    if feedback is not None and feedback not in FEEDBACK_FILTERS:
        raise typer.BadParameter(f"one of {', '.join(FEEDBACK_FILTERS)}",
                                 param_hint="--feedback")
    return Filters(user=user, since=since, until=until, text=text, kind=kind, refused=refused,
                   unsupported=True if unsupported else None, feedback=feedback)


@audit_app.command("list")
def list_records(
    user: UserOpt = None, since: SinceOpt = None, until: UntilOpt = None, text: TextOpt = None,
    kind: KindOpt = None, refused: RefusedOpt = None, unsupported: UnsupportedOpt = False,
    feedback: FeedbackOpt = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """The newest records, filtered."""
    filters = _filters(user, since, until, text, kind, refused, unsupported, feedback)

    from core.audit_export import jsonl_line

    def work() -> tuple[list[Record], dict[str, str]]:
        from core.feedback import latest_feedback

        with container_scope() as c:
            records = c.audit.records(filters, limit)
            rated = latest_feedback(c.database, [r.record_id for r in records])
            return records, {k: f.rating for k, f in rated.items()}

    found, ratings = run_cli(work)
    if as_json:
        out.print_json(data={"records": [json.loads(jsonl_line(r)) for r in found]})
        return
    for r in found:
        what = r.question or json.dumps(r.body, ensure_ascii=False)[:100]
        outcome = r.body.get("outcome") or ("refused" if r.refused else "answered")
        state = "" if r.refused is None else f"{outcome} "
        flag = f"{r.unsupported} unsupported " if r.unsupported else ""
        rating = f"rated {ratings[r.record_id]} " if r.record_id in ratings else ""
        out.print(f"{r.seq:>6}  {r.at[:19]}  {r.kind:<22} {r.actor:<20} {state}{flag}{rating}{what}")


@audit_app.command("show")
def show(record_id: Annotated[str, typer.Argument(help="The record's id.")]) -> None:
    """One record in full (JSON), with the kept texts of the passages it retrieved."""

    def work() -> dict[str, Any]:
        from serve.http.audit_schemas import AuditDetail

        with container_scope() as c:
            return AuditDetail.load(c.audit, record_id).model_dump(mode="json")

    detail = run_cli(work)
    out.print_json(data=detail)
    for p in detail["passages"]:
        if p["intact"] is False:
            err.print(f"ALTERED: the kept text of passage #{p['rank']} ({p['chunk_id']}) no "
                      "longer matches the hash this record holds")


@audit_app.command("export")
def export(
    format: Annotated[str, typer.Option("--format", "-f", help="jsonl (verifiable) or csv.")]
    = "jsonl",
    output: OutputOpt = None,
    user: UserOpt = None, since: SinceOpt = None, until: UntilOpt = None, text: TextOpt = None,
    kind: KindOpt = None, refused: RefusedOpt = None, unsupported: UnsupportedOpt = False,
    feedback: FeedbackOpt = None,
) -> None:
    """Every matching record, oldest first. A full JSONL export can be verified offline."""
    filters = _filters(user, since, until, text, kind, refused, unsupported, feedback)

    def work() -> int:
        from core.admin_records import record_admin
        from core.audit_export import export_lines

        if format not in ("jsonl", "csv"):
            raise InputError("--format: jsonl or csv")
        with container_scope() as c:
            record_admin(c.audit, getpass.getuser(), "audit.exported", "cli", format=format,
                         filters=filters.active())
            handle: TextIO = output.open("w", encoding="utf-8", newline="") if output else sys.stdout
            try:
                count = 0
                for line in export_lines(c.audit.scan(filters), format):
                    handle.write(line)
                    count += 1
                return count - (format == "csv")  # records, not the header
            finally:
                if output:
                    handle.close()

    count = run_cli(work)
    if output:
        err.print(f"{count} record(s) written to {output}")


@audit_app.command("verify")
def verify(
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", help="A checkpoint saved earlier: the chain must still hold it.")] = None,
    file: Annotated[Path | None, typer.Option(
        "--file", help="Verify a full JSONL export instead of the database.")] = None,
    public_keys: Annotated[Path | None, typer.Option(
        "--public-keys", help="With --file: check seals against these public keys (JSON "
        "lines as keygen prints them) instead of the configured ones.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Walk the chain: links, hashes, seals, the checkpoint file and the kept texts.
    Exit 0 when intact; 4 naming the first broken record otherwise."""

    def work() -> Verification:
        wanted = _read_checkpoint(checkpoint) if checkpoint else None
        if file is not None:
            return _verify_file(file, wanted, public_keys)
        with container_scope() as c:
            return c.audit.verify(wanted)

    result = run_cli(work)
    first = result.first
    if as_json:
        out.print_json(data={
            "intact": result.intact, "records": result.records, "head_seq": result.head_seq,
            "head_hash": result.head_hash, "sealed": result.sealed,
            "checkpoints": result.checkpoints, "texts": result.texts,
            "problems": [{"seq": p.seq, "record_id": p.record_id, "reason": p.reason}
                         for p in result.problems[:100]]})
    elif first is None:
        out.print(f"intact: {result.records} record(s); head {result.head_seq} {result.head_hash}; "
                  f"{result.sealed} seal(s), {result.checkpoints} checkpoint(s) and "
                  f"{result.texts} kept text(s) hold")
    else:
        out.print(f"BROKEN at record {first.seq}"
                  f"{f' ({first.record_id})' if first.record_id else ''}: {first.reason}")
        for p in result.problems[1:20]:
            out.print(f"  also record {p.seq}: {p.reason}")
        out.print(f"{len(result.problems)} problem(s) in {result.records} record(s)")
    if first is not None:
        raise typer.Exit(EXIT_BROKEN)


@audit_app.command("checkpoint")
def checkpoint(output: OutputOpt = None) -> None:
    """A checkpoint now: its own record, then the head naming it, signed and appended to the
    checkpoint file. Print (or save) it to keep elsewhere too, e.g. notarised."""

    def work() -> dict[str, Any]:
        with container_scope() as c:
            return c.audit.checkpoint(getpass.getuser(), "cli")

    data = run_cli(work)
    if output:
        output.write_text(json.dumps(data) + "\n", encoding="utf-8")
        err.print(f"checkpoint at record {data['seq']} written to {output}")
    else:
        out.print(json.dumps(data))


@audit_app.command("purge")
def purge() -> None:
    """Drop kept passage texts past the retention period (ENCLAVE_AUDIT__TEXT_RETENTION_DAYS)."""

    def work() -> tuple[int, int]:
        with container_scope() as c:
            days = c.settings.audit.text_retention_days
            return days, c.audit.expire(days, getpass.getuser(), "cli", record_nothing=True)

    days, purged = run_cli(work)
    out.print(f"{purged} kept text(s) older than {days} days purged")


@audit_app.command("keygen")
def keygen(
    key_id: Annotated[str, typer.Option("--key-id", help="A name for the key, e.g. 2026-q1.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The new key file (mode 0600).")],
) -> None:
    """Make a new seal key; print its public-key line for the auditors to keep.

    To rotate: append the old key's line (`enclave audit pubkey`) to the public-keys file
    (ENCLAVE_AUDIT__SEAL_PUBLIC_KEYS_FILE), then point ENCLAVE_AUDIT__SEAL_KEY_FILE here.
    """

    def work() -> dict[str, str]:
        from core.audit_seal import key_id_of, write_key

        key_id_of(key_id)
        try:
            return write_key(output, key_id).public_line()
        except FileExistsError as exc:
            raise InputError(f"{output} exists: a key file is never overwritten") from exc
        except OSError as exc:
            raise InputError(f"cannot write {output}: {exc.strerror}") from exc

    line = run_cli(work)
    err.print(f"seal key {line['key_id']} written to {output}; its public key:")
    out.print(json.dumps(line))


@audit_app.command("pubkey")
def pubkey() -> None:
    """The public-key line of the current seal key (ENCLAVE_AUDIT__SEAL_KEY_FILE)."""

    def work() -> dict[str, str]:
        with container_scope() as c:
            if c.audit.sealing is None:
                raise InputError("the audit is not sealed")
            return c.audit.sealing.key.public_line()

    out.print(json.dumps(run_cli(work)))


def _read_checkpoint(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the checkpoint {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError("a checkpoint is a JSON object with seq and hash")
    return data


def _verify_file(path: Path, checkpoint: dict[str, Any] | None,
                 public_keys: Path | None) -> Verification:
    from core.audit_export import record_from_json
    from core.audit_seal import KeyRing
    from core.audit_verify import verify_chain
    from core.settings import Settings

    keys = KeyRing.of(None, public_keys) if public_keys else _configured_keys(Settings())
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        records = (record_from_json(line) for line in handle if line.strip())
        try:
            return verify_chain(records, None, checkpoint, keys)
        except ValueError as exc:
            raise InputError(f"{path} is not a JSONL audit export: {exc}") from exc


def _configured_keys(settings: Settings) -> KeyRing | None:
    """The keys this installation knows, without making a key to check an export with."""
    from core.audit_seal import KeyRing, load_key

    key_file = settings.resolved_seal_key_file
    current = load_key(key_file) if key_file.exists() else None
    if current is None and settings.audit.seal_public_keys_file is None:
        return None
    return KeyRing.of(current, settings.audit.seal_public_keys_file)
