"""Who may read a file on an SMB share, from its security descriptor.

The descriptor (owner, group and DACL) is read over SMB2 with a QUERY_INFO that
smbprotocol has no call for, and parsed here from its self-relative form; its ACCESS_ALLOWED
ACEs that grant reading the data become principals: ``sid:S-…`` always, and a name where
the SID says it without a directory lookup (Samba's unix users and groups, Everyone).
"""

from __future__ import annotations

import grp
import pwd
import struct
from typing import Any

from smbclient._io import SMBFileTransaction
from smbprotocol.open import SMB2QueryInfoRequest, SMB2QueryInfoResponse

# SMB2 and MS-DTYP constants, spelled out where smbprotocol does not name them.
_SMB2_0_INFO_SECURITY = 0x03
_OWNER_GROUP_DACL = 0x1 | 0x2 | 0x4  # OWNER_, GROUP_, DACL_SECURITY_INFORMATION
_FILE_READ_DATA = 0x1
_GENERIC_ALL = 0x10000000
_GENERIC_READ = 0x80000000
_READS = _FILE_READ_DATA | _GENERIC_READ | _GENERIC_ALL
_ACCESS_ALLOWED = 0x00
_ACCESS_DENIED = 0x01
_INHERIT_ONLY = 0x08
_SE_DACL_PRESENT = 0x0004
_EVERYONE = "S-1-1-0"
# An SD is at most 64 KiB (its ACL sizes are 16-bit), so one buffer this size always fits.
_SD_BUFFER = 65536


def query_security(raw: Any) -> bytes:
    """The raw security descriptor (owner, group, DACL) of an SMBRawIO, open or not.

    On a closed handle smbclient sends create, query and close as one compound request.
    smbprotocol names no query for security info, so the request is built here.
    """
    request = SMB2QueryInfoRequest()
    request["info_type"] = _SMB2_0_INFO_SECURITY
    request["output_buffer_length"] = _SD_BUFFER
    request["additional_information"] = _OWNER_GROUP_DACL
    request["file_id"] = raw.fd.file_id

    def receive(sent: Any) -> bytes:
        response = SMB2QueryInfoResponse()
        response.unpack(raw.fd.connection.receive(sent)["data"].get_value())
        return bytes(response["buffer"].get_value())

    transaction = SMBFileTransaction(raw)
    transaction += (request, receive)
    transaction.commit()
    return bytes(transaction.results[0])


# Reading a security descriptor ([MS-DTYP] 2.4.6, self-relative form).


def parse_descriptor(data: bytes) -> tuple[str | None, str | None, list[tuple[int, int, int, str]] | None]:
    """Owner SID, group SID and the DACL's ACEs as (type, flags, mask, SID); a None DACL
    is a NULL DACL (everyone may do anything), an empty list an empty one (no one may)."""
    if len(data) < 20:
        raise ValueError("security descriptor too short")
    _revision, _sbz, control, owner_at, group_at, _sacl_at, dacl_at = struct.unpack_from("<BBHIIII", data)
    owner = _sid(data, owner_at) if owner_at else None
    group = _sid(data, group_at) if group_at else None
    if not control & _SE_DACL_PRESENT or not dacl_at:
        return owner, group, None
    _acl_revision, _sbz1, _acl_size, count, _sbz2 = struct.unpack_from("<BBHHH", data, dacl_at)
    aces: list[tuple[int, int, int, str]] = []
    at = dacl_at + 8
    for _ in range(count):
        ace_type, flags, size = struct.unpack_from("<BBH", data, at)
        if size < 4:
            raise ValueError("malformed ACE")
        # Only the plain allow and deny ACEs carry (mask, SID) in this layout; other kinds
        # (callback, object) are kept with no SID, so they grant nothing here.
        if ace_type in (_ACCESS_ALLOWED, _ACCESS_DENIED):
            (mask,) = struct.unpack_from("<I", data, at + 4)
            aces.append((ace_type, flags, mask, _sid(data, at + 8)))
        else:
            aces.append((ace_type, flags, 0, ""))
        at += size
    return owner, group, aces


def _sid(data: bytes, at: int) -> str:
    revision, count = struct.unpack_from("<BB", data, at)
    authority = int.from_bytes(data[at + 2:at + 8], "big")
    subs = struct.unpack_from(f"<{count}I", data, at + 8)
    return "-".join(["S", str(revision), str(authority), *(str(s) for s in subs)])


def readers(descriptor: bytes, *, resolve_unix_ids: bool = True) -> tuple[str, ...]:
    """Who may read the data, by the descriptor's DACL, as principals.

    A deny ACE for reading cannot be weighed without knowing who belongs to which group,
    so every grant after one is dropped: the result may name fewer readers than the
    server would allow, never more. (Samba's mapping of POSIX modes writes no deny ACEs;
    Windows puts explicit denies first, so a share that uses them yields only the grants
    listed before them.)
    """
    _owner, _group, aces = parse_descriptor(descriptor)
    if aces is None:
        granted = [_EVERYONE]
    else:
        granted = []
        for ace_type, flags, mask, sid in aces:
            if flags & _INHERIT_ONLY or not mask & _READS or not sid:
                continue
            if ace_type == _ACCESS_DENIED:
                break
            if ace_type == _ACCESS_ALLOWED and sid not in granted:
                granted.append(sid)
    principals: list[str] = []
    for sid in granted:
        principals.append(f"sid:{sid}")
        if (name := _name(sid, resolve_unix_ids)) is not None:
            principals.append(name)
    return tuple(dict.fromkeys(principals))


def _name(sid: str, resolve_unix_ids: bool) -> str | None:
    if sid == _EVERYONE:
        return "other"
    if not resolve_unix_ids:
        return None
    kind, _, number = sid.rpartition("-")
    if not number.isdigit():
        return None
    try:
        if kind == "S-1-22-1":
            return f"user:{pwd.getpwuid(int(number)).pw_name}"
        if kind == "S-1-22-2":
            return f"group:{grp.getgrgid(int(number)).gr_name}"
    except (KeyError, OverflowError):
        return None
    return None

