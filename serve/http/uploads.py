"""Files uploaded to the admin API: kept under the upload folder, one folder per upload."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path, PurePosixPath, PureWindowsPath

from starlette.datastructures import UploadFile

from core.errors import InputError, TooLarge
from core.names import text_problem

_BLOCK = 1 << 20


# What file systems take for one name, in bytes (ext4, XFS, NTFS in UTF-16 units, roughly).
MAX_NAME_BYTES = 255


def safe_name(filename: str | None) -> str:
    """The bare file name: a client's folders, '..' and drive letters are dropped."""
    problem = text_problem(filename or "", multiline=False)
    if problem is not None:
        raise InputError(f"upload file name {ascii(filename)[:80]}: it {problem}")
    name = PureWindowsPath(PurePosixPath(filename or "").name).name.strip()
    if name in ("", ".", "..") or name.startswith("."):
        raise InputError(f"upload has no usable file name: {filename!r}")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise InputError(f"upload file name {name[:40]!r}...: over {MAX_NAME_BYTES} bytes")
    return name


async def save_uploads(files: list[UploadFile], root: Path, max_bytes: int) -> Path:
    if not files:
        raise InputError("the upload holds no files (form field 'files')")
    folder = root / uuid.uuid4().hex
    folder.mkdir(parents=True)
    try:
        names: set[str] = set()
        for upload in files:
            name = safe_name(upload.filename)
            stem, suffix, n = Path(name).stem, Path(name).suffix, 1
            while name in names:
                n += 1
                name = f"{stem} ({n}){suffix}"
            names.add(name)
            written = 0
            with (folder / name).open("wb") as out:
                while block := await upload.read(_BLOCK):
                    written += len(block)
                    if written > max_bytes:
                        raise TooLarge(f"{name}: over the upload limit of {max_bytes // 2**20} MB")
                    out.write(block)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder
