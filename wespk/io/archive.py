"""Unpacking downloaded archives (tar, tar.gz, zip) without path traversal.

Corpus archives (MUSAN, RIRS_NOISES, VoxCeleb, CN-Celeb, VoxConverse) come
from the internet; a crafted one could name a member ``../../.bashrc`` or
``/etc/...``, or hold a link that points outside the destination and a file
written through it. :func:`unpack_archive` extracts only what stays inside the
destination folder and refuses the whole archive, with one line naming it and
the member, at the first member that would not:

* tar: Python's ``data`` extraction filter (leading ``/`` stripped, so
  absolute names land inside the destination; ``..`` components, links
  leaving the destination, device files and fifos refused; permission bits
  made safe);
* zip: every name is checked before anything is written (absolute names,
  drive letters, ``..`` components, and symbolic links, which zip files
  carry in their Unix mode bits).

Extraction is idempotent with :func:`unpack_once`: a marker file in the
destination records a finished unpacking, so an interrupted one is redone.
"""

import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import List, Union

PathLike = Union[str, os.PathLike]


class ArchiveError(ValueError):
    """An archive that cannot be unpacked safely, or cannot be read."""


def _unsafe_zip_name(info: zipfile.ZipInfo) -> str:
    """Why a zip member must not be extracted ('' when it is safe)."""
    name = info.filename
    if not name:
        return "an empty member name"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).is_absolute() or PureWindowsPath(name).drive:
        return "an absolute path"
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        return "a '..' component"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link"
    return ""


def _unpack_zip(path: Path, dest: Path) -> List[str]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise ArchiveError(f"{path}: not a readable zip archive ({e})") from None
    with archive:
        members = archive.infolist()
        for info in members:
            reason = _unsafe_zip_name(info)
            if reason:
                raise ArchiveError(f"{path}: member {info.filename!r} is {reason}; refusing to unpack "
                                   f"the archive")
        try:
            archive.extractall(dest)
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ArchiveError(f"{path}: corrupt zip archive ({e})") from None
    return [info.filename for info in members]


def _unpack_tar(path: Path, dest: Path) -> List[str]:
    try:
        archive = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as e:
        raise ArchiveError(f"{path}: not a readable tar archive ({e})") from None
    names: List[str] = []
    with archive:
        try:
            for member in archive:
                archive.extract(member, dest, filter="data")
                names.append(member.name)
        except tarfile.FilterError as e:
            member = getattr(e, "tarinfo", None)
            name = member.name if member is not None else "?"
            raise ArchiveError(f"{path}: member {name!r} would be written outside {dest} or is not a plain "
                               f"file ({e}); refusing to unpack the rest") from None
        except (tarfile.TarError, OSError, EOFError) as e:
            raise ArchiveError(f"{path}: corrupt tar archive ({e})") from None
    return names


def unpack_archive(path: PathLike, dest: PathLike) -> List[str]:
    """Extract the tar (any compression) or zip archive ``path`` into ``dest``; the member names.

    Raises :class:`ArchiveError` for an unreadable archive or a member that
    would land outside ``dest`` (see the module docstring).
    """
    path, dest = Path(path), Path(dest)
    if not path.is_file():
        raise ArchiveError(f"{path}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(path):
        return _unpack_zip(path, dest)
    return _unpack_tar(path, dest)


def marker_path(path: PathLike, dest: PathLike) -> Path:
    """The file that records that ``path`` was unpacked into ``dest``."""
    return Path(dest) / f".unpacked-{Path(path).name}"


def unpack_once(path: PathLike, dest: PathLike) -> bool:
    """:func:`unpack_archive` unless the marker says it was done; True when it unpacked now."""
    marker = marker_path(path, dest)
    if marker.exists():
        return False
    names = unpack_archive(path, dest)
    tmp = marker.with_name(marker.name + ".tmp")
    tmp.write_text(f"{len(names)} members of {Path(path).resolve()}\n", encoding="utf-8")
    os.replace(tmp, marker)
    return True
