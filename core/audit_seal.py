"""The audit chain's seal: an Ed25519 key the database never holds.

Whoever can write to the database can recompute every hash of the chain and rewind its
head, but cannot sign. So every record carries a signature of its seq and hash (its seal),
and checkpoints of the head are signed too (``core.audit_checkpoints``). Keys have ids: a
replaced key's public half still verifies what it signed.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.errors import ConfigError, InputError

CHECKPOINT_KIND = "enclave-audit-checkpoint"
# What a checkpoint line's signature covers.
CHECKPOINT_SIGNED = ("kind", "seq", "hash", "at", "key_id")
# A key id goes before the ':' of a seal and into file names: keep it plain.
_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def seal_message(seq: int, digest: str) -> bytes:
    return f"{seq}:{digest}".encode("ascii")


def checkpoint_message(line: Mapping[str, Any]) -> bytes:
    signed = {k: line[k] for k in CHECKPOINT_SIGNED}
    return json.dumps(signed, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def key_id_of(value: object) -> str:
    if not isinstance(value, str) or not _KEY_ID.fullmatch(value):
        raise InputError("a key id is 1-64 letters, digits, '.', '_' or '-', e.g. 2026-q1")
    return value


@dataclass(frozen=True, slots=True)
class SealKey:
    key_id: str
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    def sign(self, message: bytes) -> str:
        return _b64(self.private.sign(message))

    def seal(self, seq: int, digest: str) -> str:
        return f"{self.key_id}:{self.sign(seal_message(seq, digest))}"

    def public_line(self) -> dict[str, str]:
        """What auditors keep, and what seal_public_keys_file lists once this key is replaced."""
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"key_id": self.key_id, "public_key": _b64(raw)}


class KeyRing:
    """The public keys that seals and checkpoints may be signed with, by key id."""

    def __init__(self, keys: Mapping[str, Ed25519PublicKey]) -> None:
        self.keys = dict(keys)

    @classmethod
    def of(cls, current: SealKey | None, public_keys_file: Path | None) -> KeyRing:
        keys = read_public_keys(public_keys_file) if public_keys_file else {}
        if current is not None:
            listed = keys.get(current.key_id)
            if listed is not None and _raw(listed) != _raw(current.public):
                raise ConfigError(f"the seal key's id {current.key_id!r} is listed in "
                                  f"{public_keys_file} with another public key")
            keys[current.key_id] = current.public
        return cls(keys)

    def check(self, key_id: str, signature: str, message: bytes) -> str | None:
        """None when the signature is good; otherwise why not."""
        key = self.keys.get(key_id)
        if key is None:
            return f"signed by an unknown key {key_id!r}"
        try:
            key.verify(base64.b64decode(signature, validate=True), message)
        except (binascii.Error, ValueError, InvalidSignature):
            return "its signature does not match"
        return None

    def check_seal(self, seal: str, seq: int, digest: str) -> str | None:
        key_id, sep, signature = seal.partition(":")
        if not sep:
            return "its seal is malformed"
        return self.check(key_id, signature, seal_message(seq, digest))


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_of(line: Mapping[str, Any]) -> tuple[str, Ed25519PublicKey]:
    return key_id_of(line["key_id"]), Ed25519PublicKey.from_public_bytes(
        base64.b64decode(line["public_key"], validate=True))


def read_public_keys(path: Path) -> dict[str, Ed25519PublicKey]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the audit's public keys {path}: {exc.strerror}") from exc
    keys: dict[str, Ed25519PublicKey] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            key_id, key = public_key_of(json.loads(line))
        except (ValueError, KeyError, TypeError, binascii.Error, InputError) as exc:
            raise ConfigError(f"{path}:{number} is not a line of {{\"key_id\", \"public_key\"}} "
                              "as `enclave audit keygen` prints it") from exc
        keys[key_id] = key
    return keys


# -- key files ----------------------------------------------------------------------------------


def load_key(path: Path) -> SealKey:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"the audit seal key {path} does not exist: make one with "
                          "`enclave audit keygen` (ENCLAVE_AUDIT__SEAL_KEY_FILE)") from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the audit seal key {path}") from exc
    try:  # never echo the file: it is the secret
        return SealKey(key_id_of(data["key_id"]), Ed25519PrivateKey.from_private_bytes(
            base64.b64decode(data["private_key"], validate=True)))
    except (KeyError, TypeError, ValueError, binascii.Error, InputError) as exc:
        raise ConfigError(f"{path} is not an audit seal key (JSON with key_id and "
                          "private_key, as `enclave audit keygen` writes it)") from exc


def write_key(path: Path, key_id: str) -> SealKey:
    """A new key in a new file (mode 0600); FileExistsError rather than overwrite one."""
    key = SealKey(key_id_of(key_id), Ed25519PrivateKey.generate())
    seed = key.private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                     serialization.NoEncryption())
    content = json.dumps({"key_id": key.key_id, "private_key": _b64(seed)}) + "\n"
    # Written whole under a temporary name, then linked into place: a process that starts
    # at the same moment reads either no key or the complete one, and a link never replaces.
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return key


def open_key(path: Path, create: bool) -> SealKey:
    """The seal key; in development (``create``) made on first use, in a 0700 folder."""
    if create and not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        key_id = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(4)}"
        try:
            return write_key(path, key_id)
        except FileExistsError:
            pass  # another process made it first: use that one
    return load_key(path)
