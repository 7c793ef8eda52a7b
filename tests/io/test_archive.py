"""Unpacking downloaded archives: good ones round-trip, traversal is refused before it writes."""

import io
import os
import stat
import subprocess
import sys
import tarfile
import zipfile

import pytest

from wespk.io.archive import ArchiveError, marker_path, unpack_archive, unpack_once

PAYLOAD = b"RIFF fake audio bytes\n"


def _tar(path, members, mode="w:gz"):
    """members: (name, kind, data_or_target) with kind 'file', 'dir', 'symlink', 'hardlink', 'fifo'."""
    with tarfile.open(path, mode) as tar:
        for name, kind, extra in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(extra)
                tar.addfile(info, io.BytesIO(extra))
                continue
            info.type = {"dir": tarfile.DIRTYPE, "symlink": tarfile.SYMTYPE, "hardlink": tarfile.LNKTYPE,
                         "fifo": tarfile.FIFOTYPE}[kind]
            if kind in ("symlink", "hardlink"):
                info.linkname = extra
            tar.addfile(info)
    return path


def _zip(path, names, symlink=None):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, PAYLOAD)
        if symlink:
            info = zipfile.ZipInfo(symlink[0])
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, symlink[1])
    return path


def test_tar_gz_and_zip_round_trip(tmp_path):
    tar = _tar(tmp_path / "musan.tar.gz", [("musan/noise", "dir", None),
                                          ("musan/noise/a.wav", "file", PAYLOAD),
                                          ("musan/noise/link.wav", "symlink", "a.wav")])
    names = unpack_archive(tar, tmp_path / "out")
    assert names == ["musan/noise", "musan/noise/a.wav", "musan/noise/link.wav"]
    assert (tmp_path / "out/musan/noise/a.wav").read_bytes() == PAYLOAD
    assert (tmp_path / "out/musan/noise/link.wav").read_bytes() == PAYLOAD   # a link inside is kept
    zipped = _zip(tmp_path / "rirs.zip", ["RIRS_NOISES/real/x.wav", "RIRS_NOISES/sim/y.wav"])
    assert unpack_archive(zipped, tmp_path / "zout") == ["RIRS_NOISES/real/x.wav", "RIRS_NOISES/sim/y.wav"]
    assert (tmp_path / "zout/RIRS_NOISES/sim/y.wav").read_bytes() == PAYLOAD


@pytest.mark.parametrize("members, what", [
    ([("ok.wav", "file", PAYLOAD), ("../evil.sh", "file", b"echo pwned")], "'../evil.sh'"),
    ([("escape", "symlink", "../../"), ("escape/evil.sh", "file", b"x")], "'escape'"),
    ([("abs", "symlink", "/etc/passwd")], "'abs'"),
    ([("hard", "hardlink", "/etc/passwd")], "'hard'"),
    ([("pipe", "fifo", None)], "'pipe'"),
])
def test_tar_traversal_is_refused_naming_archive_and_member(tmp_path, members, what):
    tar = _tar(tmp_path / "crafted.tar.gz", members)
    dest = tmp_path / "dest" / "inner"
    with pytest.raises(ArchiveError, match=r"crafted\.tar\.gz: member .*" + what.replace(".", r"\.")):
        unpack_archive(tar, dest)
    assert not (tmp_path / "dest" / "evil.sh").exists() and not (tmp_path / "evil.sh").exists()


def test_tar_absolute_names_land_inside_the_destination(tmp_path):
    name = f"/tmp/wespk-absolute-{os.getpid()}"
    tar = _tar(tmp_path / "abs.tar.gz", [(name, "file", b"x")])
    unpack_archive(tar, tmp_path / "dest")
    assert not os.path.exists(name)                                   # the leading / is stripped
    assert (tmp_path / "dest" / name.lstrip("/")).read_bytes() == b"x"


@pytest.mark.parametrize("names, symlink, reason", [
    (["ok.wav", "../evil.sh"], None, "a '..' component"),
    (["/abs/evil.sh"], None, "an absolute path"),
    (["C:/evil.sh"], None, "an absolute path"),
    (["ok.wav"], ("link", "/etc/passwd"), "a symbolic link"),
])
def test_zip_traversal_is_refused_before_anything_is_written(tmp_path, names, symlink, reason):
    archive = _zip(tmp_path / "crafted.zip", names, symlink)
    dest = tmp_path / "dest"
    with pytest.raises(ArchiveError, match=f"crafted.zip: member .* is {reason}"):
        unpack_archive(archive, dest)
    assert list(dest.iterdir()) == []        # checked before extraction: not even ok.wav


def test_corrupt_and_missing_archives(tmp_path):
    broken = tmp_path / "broken.tar.gz"
    broken.write_bytes(b"\x1f\x8b\x08\x00 this is not gzip data at all")
    with pytest.raises(ArchiveError, match="broken.tar.gz: .*tar archive"):
        unpack_archive(broken, tmp_path / "out")
    with pytest.raises(ArchiveError, match="missing.zip: archive not found"):
        unpack_archive(tmp_path / "missing.zip", tmp_path / "out")


def test_unpack_once_marker_and_cli(tmp_path):
    tar = _tar(tmp_path / "set.tar", [("a.wav", "file", PAYLOAD)], mode="w")
    dest = tmp_path / "dest"
    assert unpack_once(tar, dest) is True
    assert marker_path(tar, dest).read_text().startswith("1 members of ")
    (dest / "a.wav").unlink()
    assert unpack_once(tar, dest) is False and not (dest / "a.wav").exists()   # the marker says done
    run = subprocess.run([sys.executable, "-m", "wespk.bin.unpack", "--force", str(tar), str(dest)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (dest / "a.wav").read_bytes() == PAYLOAD
    crafted = _tar(tmp_path / "crafted.tar", [("../evil.sh", "file", b"x")], mode="w")
    run = subprocess.run([sys.executable, "-m", "wespk.bin.unpack", str(crafted), str(tmp_path / "d2")],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith("wespk.bin.unpack: error: ")
    assert "'../evil.sh'" in run.stderr and "Traceback" not in run.stderr
    assert not marker_path(crafted, tmp_path / "d2").exists() and not (tmp_path / "evil.sh").exists()
