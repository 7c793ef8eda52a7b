"""The VoxCeleb recipe's download script against a local HTTP server: resume,
checksums, credentials, split archives."""

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.recipes.helpers import ArchiveServer, copy_recipe, md5, recipe_env, run, split_bytes, wait_for

MUSAN = "/openslr/17/musan.tar.gz"


@pytest.fixture()
def recipe(tmp_path):
    return copy_recipe("voxceleb/v2", tmp_path / "v2")


def download(recipe, server, checksums, *args, check=False, tool="curl"):
    cmd = ["bash", "local/download_data.sh", "--download_dir", "dl", "--openslr_base_url",
           f"{server.url}/openslr", "--checksums", str(checksums), "--downloader", tool, *args]
    return run(cmd, cwd=recipe, check=check, timeout=120)


def write_checksums(path, entries):
    path.write_text("# test archives\n" + "".join(f"{digest}  {name}\n" for name, digest in entries.items()))
    return path


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_interrupted_download_resumes(recipe, tmp_path, tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    data = os.urandom(200_000)
    checksums = write_checksums(tmp_path / "md5", {"musan.tar.gz": md5(data)})
    with ArchiveServer({MUSAN: data}) as server:
        server.truncate[MUSAN] = 1  # the first answer stops halfway and drops the connection
        first = download(recipe, server, checksums, "--parts", "musan", "--attempts", "1", tool=tool)
        assert first.returncode != 0
        assert "run again to resume" in first.stdout + first.stderr
        part = recipe / "dl" / "musan.tar.gz.part"
        assert part.stat().st_size == len(data) // 2
        assert not (recipe / "dl" / "musan.tar.gz").exists()

        second = download(recipe, server, checksums, "--parts", "musan", tool=tool)
        assert second.returncode == 0, second.stdout + second.stderr
        assert server.requests_for(MUSAN) == [(None, 200), (f"bytes={len(data) // 2}-", 206)]
    assert (recipe / "dl" / "musan.tar.gz").read_bytes() == data
    assert not part.exists()


def test_retry_within_one_run_resumes(recipe, tmp_path):
    data = os.urandom(100_000)
    checksums = write_checksums(tmp_path / "md5", {"musan.tar.gz": md5(data)})
    with ArchiveServer({MUSAN: data}) as server:
        server.truncate[MUSAN] = 1
        proc = download(recipe, server, checksums, "--parts", "musan", "--attempts", "2")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert [r for r, _ in server.requests_for(MUSAN)] == [None, f"bytes={len(data) // 2}-"]
        # a third run finds the file complete and checked: no request at all
        again = download(recipe, server, checksums, "--parts", "musan")
        assert again.returncode == 0 and "already there (md5 checked)" in again.stderr
        assert len(server.requests_for(MUSAN)) == 2
    assert (recipe / "dl" / "musan.tar.gz").read_bytes() == data


def test_killed_download_resumes(recipe, tmp_path):
    """The script is killed mid-transfer (the server stalls after half); the next run resumes."""
    data = os.urandom(400_000)
    checksums = write_checksums(tmp_path / "md5", {"musan.tar.gz": md5(data)})
    with ArchiveServer({MUSAN: data}) as server:
        server.stall = {MUSAN: 1}
        proc = subprocess.Popen(["bash", "local/download_data.sh", "--download_dir", "dl",
                                 "--openslr_base_url", f"{server.url}/openslr", "--checksums", str(checksums),
                                 "--parts", "musan", "--downloader", "curl"],
                                cwd=recipe, env=recipe_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        part = recipe / "dl" / "musan.tar.gz.part"
        try:
            assert server.stalled.wait(30)
            # curl has half of the file; let it write what it got, then kill the whole run
            assert wait_for(lambda: part.exists() and part.stat().st_size > len(data) // 4, timeout=10)
            time.sleep(0.3)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
        server.release.set()
        kept = part.stat().st_size
        assert 0 < kept <= len(data) // 2
        resumed = download(recipe, server, checksums, "--parts", "musan")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert server.requests_for(MUSAN) == [(None, 200), (f"bytes={kept}-", 206)]
    assert (recipe / "dl" / "musan.tar.gz").read_bytes() == data


def test_complete_part_is_not_downloaded_again(recipe, tmp_path):
    """A .part that is already whole (killed before the rename): the server answers 416."""
    data = os.urandom(50_000)
    checksums = write_checksums(tmp_path / "md5", {"musan.tar.gz": md5(data)})
    (recipe / "dl").mkdir()
    (recipe / "dl" / "musan.tar.gz.part").write_bytes(data)
    with ArchiveServer({MUSAN: data}) as server:
        proc = download(recipe, server, checksums, "--parts", "musan")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert server.requests_for(MUSAN) == [(f"bytes={len(data)}-", 416)]
    assert (recipe / "dl" / "musan.tar.gz").read_bytes() == data


def test_checksum_mismatch_is_reported(recipe, tmp_path):
    data = os.urandom(20_000)
    wrong = md5(b"something else")
    checksums = write_checksums(tmp_path / "md5", {"musan.tar.gz": wrong})
    with ArchiveServer({MUSAN: data}) as server:
        proc = download(recipe, server, checksums, "--parts", "musan")
    assert proc.returncode != 0
    message = proc.stdout + proc.stderr
    assert "checksum mismatch" in message and wrong in message and md5(data) in message
    assert not (recipe / "dl" / "musan.tar.gz").exists()
    assert (recipe / "dl" / "musan.tar.gz.bad").read_bytes() == data
    # a file put there by hand with the wrong content is caught too
    (recipe / "dl" / "musan.tar.gz").write_bytes(data)
    with ArchiveServer({MUSAN: data}) as server:
        again = download(recipe, server, checksums, "--parts", "musan")
        assert server.requests == []
    assert again.returncode != 0 and "delete it and run again" in again.stderr


@pytest.mark.parametrize("tool", ["curl", "wget"])
def test_voxceleb_needs_credentials(recipe, tmp_path, tool):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} not installed")
    archive = os.urandom(30_000)
    checksums = write_checksums(tmp_path / "md5", {"vox1_test_wav.zip": md5(archive)})
    # no address at all: says what to give
    with ArchiveServer({}) as server:
        proc = download(recipe, server, checksums, "--parts", "vox1_test", tool=tool)
        assert server.requests == []
    assert proc.returncode != 0
    assert "--vox_base_url" in proc.stderr and "registered users" in proc.stderr
    with ArchiveServer({"/vox/vox1_test_wav.zip": archive}) as server:
        server.auth["/vox/"] = ("alice", 'p"w d\\1')
        denied = download(recipe, server, checksums, "--parts", "vox1_test", "--vox_base_url", f"{server.url}/vox",
                          tool=tool)
        assert denied.returncode != 0
        assert "needs credentials (HTTP 401)" in denied.stderr and "--vox_user" in denied.stderr
        env = recipe_env()
        env.update(VOXCELEB_USER="alice", VOXCELEB_PASSWORD='p"w d\\1')
        ok = run(["bash", "local/download_data.sh", "--download_dir", "dl", "--checksums", str(checksums),
                  "--parts", "vox1_test", "--vox_base_url", f"{server.url}/vox/{{file}}?key=abc",
                  "--downloader", tool],
                 cwd=recipe, env=env, check=False)
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert 'p"w' not in ok.stdout + ok.stderr
    assert (recipe / "dl" / "vox1_test_wav.zip").read_bytes() == archive


def test_split_archive_is_joined_and_checked(recipe, tmp_path):
    archive = os.urandom(80_000)
    parts = split_bytes(archive, 4)
    names = [f"vox1_dev_wav_parta{c}" for c in "abcd"]
    entries = {name: md5(p) for name, p in zip(names, parts)}
    entries["vox1_dev_wav.zip"] = md5(archive)
    checksums = write_checksums(tmp_path / "md5", entries)
    files = {f"/vox/{name}": p for name, p in zip(names, parts)}
    with ArchiveServer(files) as server:
        proc = download(recipe, server, checksums, "--parts", "vox1_dev", "--vox_base_url", f"{server.url}/vox",
                        "--nj", "2")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (recipe / "dl" / "vox1_dev_wav.zip").read_bytes() == archive
        assert not any((recipe / "dl" / name).exists() for name in names)  # removed once joined
        # run again: the joined archive is there and checked, nothing is fetched
        count = len(server.requests)
        again = download(recipe, server, checksums, "--parts", "vox1_dev", "--vox_base_url", f"{server.url}/vox")
        assert again.returncode == 0 and len(server.requests) == count
    # a corrupt part is caught by its own checksum
    entries["vox1_dev_wav_partab"] = md5(b"not it")
    bad = write_checksums(tmp_path / "bad.md5", entries)
    (recipe / "dl" / "vox1_dev_wav.zip").unlink()
    with ArchiveServer(files) as server:
        proc = download(recipe, server, bad, "--parts", "vox1_dev", "--vox_base_url", f"{server.url}/vox")
    assert proc.returncode != 0 and "checksum mismatch" in proc.stderr and "vox1_dev_wav_partab" in proc.stderr
