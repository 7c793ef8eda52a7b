"""Shared pieces of the recipe tests: a local HTTP server with Range support,
miniature corpus trees of generated audio, and private copies of recipes."""

import base64
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import soundfile

from tests.conftest import REPO

SAMPLE_RATE = 16000


# ---------------------------------------------------------------- server ---
class ArchiveServer:
    """Serves in-memory files on 127.0.0.1 in a thread, honouring ``Range: bytes=N-``.

    * ``files``: URL path -> content.
    * ``truncate``: paths whose next ``truncate[path]`` full (non-range)
      responses announce the whole length but send only half of it and close
      the connection, as a dropped connection would.
    * ``stall``: paths whose next ``stall[path]`` full responses send half
      the content, set ``stalled``, then wait (until ``release`` is set,
      60 s at most).
    * ``auth``: URL path prefix -> (user, password) required (basic auth).
    * ``requests`` records ``(path, range header or None, status)``.

    The server stops when the ``with`` block ends, and by itself after
    ``lifetime`` seconds at the latest (so a failed test never leaves it
    running).
    """

    def __init__(self, files: Dict[str, bytes], lifetime: float = 300.0):
        self.files = dict(files)
        self.truncate: Dict[str, int] = {}
        self.stall: Dict[str, int] = {}
        self.release = threading.Event()
        self.stalled = threading.Event()
        self.auth: Dict[str, Tuple[str, str]] = {}
        self.requests: List[Tuple[str, Optional[str], int]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 20

            def log_message(self, *args):  # quiet
                pass

            def _record(self, status: int) -> None:
                with server.lock:
                    server.requests.append((self.path, self.headers.get("Range"), status))

            def _reply(self, status: int, body: bytes = b"", headers=()) -> None:
                self._record(status)
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                for prefix, (user, password) in server.auth.items():
                    if path.startswith(prefix):
                        token = base64.b64encode(f"{user}:{password}".encode()).decode()
                        if self.headers.get("Authorization") != f"Basic {token}":
                            self._reply(401, b"login needed\n", [("WWW-Authenticate", 'Basic realm="test"')])
                            return
                if path not in server.files:
                    self._reply(404, b"not found\n")
                    return
                data = server.files[path]
                range_header = self.headers.get("Range")
                if range_header:
                    spec = range_header.strip()
                    if not spec.startswith("bytes=") or "," in spec:
                        self._reply(400, b"bad range\n")
                        return
                    first, _, last = spec[len("bytes="):].partition("-")
                    start = int(first)
                    end = int(last) if last else len(data) - 1
                    if start >= len(data):
                        self._reply(416, b"", [("Content-Range", f"bytes */{len(data)}")])
                        return
                    end = min(end, len(data) - 1)
                    self._reply(206, data[start:end + 1],
                                [("Content-Range", f"bytes {start}-{end}/{len(data)}"),
                                 ("Accept-Ranges", "bytes")])
                    return
                with server.lock:
                    cut = server.truncate.get(path, 0) > 0
                    if cut:
                        server.truncate[path] -= 1
                    stall = not cut and server.stall.get(path, 0) > 0
                    if stall:
                        server.stall[path] -= 1
                if cut or stall:
                    self._record(200)
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Accept-Ranges", "bytes")
                    self.end_headers()
                    self.wfile.write(data[:len(data) // 2])
                    self.wfile.flush()
                    if stall:
                        server.stalled.set()
                        server.release.wait(60)
                    self.close_connection = True
                    return
                self._reply(200, data, [("Accept-Ranges", "bytes")])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.timer = threading.Timer(lifetime, self.stop)
        self.timer.daemon = True

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def start(self) -> "ArchiveServer":
        self.thread.start()
        self.timer.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> "ArchiveServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def requests_for(self, path: str) -> List[Tuple[Optional[str], int]]:
        with self.lock:
            return [(r, s) for p, r, s in self.requests if p.split("?", 1)[0] == path]


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# ----------------------------------------------------------------- audio ---
def write_audio(path: Path, seconds: float, seed: int, fmt: str = "WAV") -> Path:
    """A few seconds of a sine (speaker-dependent pitch) plus noise, 16 kHz 16-bit."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 100 + 20 * (seed % 17)
    audio = 0.3 * np.sin(2 * np.pi * pitch * t) + 0.05 * rng.standard_normal(t.size)
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), audio.astype(np.float32), SAMPLE_RATE, format=fmt, subtype="PCM_16")
    return path


def make_voxceleb_tree(root: Path, speakers: Sequence[str], videos: int = 2, utts: int = 2,
                       ext: str = "wav", seconds=(2.5, 7.0)) -> List[str]:
    """``root/<spk>/<video>/<nnnnn>.<ext>`` files; returns their paths relative to root."""
    rels = []
    n = 0
    for s, spk in enumerate(speakers):
        for v in range(videos):
            video = f"-v{s:02d}_{v:02d}Xq"  # YouTube ids may start with '-' and hold '_'

            for u in range(1, utts + 1):
                rel = f"{spk}/{video}/{u:05d}.{ext}"
                write_audio(root / rel, seconds[n % len(seconds)], seed=1000 + n,
                            fmt="FLAC" if ext == "flac" else "WAV")
                rels.append(rel)
                n += 1
    return rels


def make_musan_tree(root: Path) -> None:
    """``root/musan/{noise,music,speech}/<source>/<category>-...-NNNN.wav``."""
    for i, category in enumerate(("noise", "music", "speech")):
        for j in range(2):
            write_audio(root / "musan" / category / "src" / f"{category}-src-{j:04d}.wav", 1.5, seed=50 + 2 * i + j)


def make_rirs_tree(root: Path) -> None:
    """``root/RIRS_NOISES/simulated_rirs/<room>/RoomNNN/RoomNNN-NNNNN.wav`` (short decays)."""
    rng = np.random.default_rng(3)
    for k, room in enumerate(("smallroom", "mediumroom", "largeroom")):
        path = root / "RIRS_NOISES" / "simulated_rirs" / room / f"Room00{k}" / f"Room00{k}-00001.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 1600
        rir = rng.standard_normal(n) * np.exp(-np.arange(n) / (200.0 * (k + 1)))
        rir[0] = 1.0
        soundfile.write(str(path), (0.5 * rir / np.abs(rir).max()).astype(np.float32), SAMPLE_RATE,
                        subtype="PCM_16")


def zip_dir(src: Path, arcroot: str) -> bytes:
    """A zip of ``src`` whose members start with ``arcroot/``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(src.rglob("*")):
            if path.is_file():
                zf.write(path, f"{arcroot}/{path.relative_to(src).as_posix()}")
    return buf.getvalue()


def tar_gz_dir(src: Path, arcroot: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(str(src), arcname=arcroot)
    return buf.getvalue()


def split_bytes(data: bytes, parts: int) -> List[bytes]:
    size = -(-len(data) // parts)
    return [data[i * size:(i + 1) * size] for i in range(parts)]


# --------------------------------------------------------------- recipes ---
def copy_recipe(name: str, dst: Path) -> Path:
    """A private copy of ``examples/<name>`` (own data/ and exp/), linked to this repo."""
    src = REPO / "examples" / name
    dst.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.name in ("tools", "wespk", "data", "exp"):
            continue
        if item.is_dir():
            shutil.copytree(item, dst / item.name, symlinks=True)
        else:
            shutil.copy2(item, dst / item.name)
    os.symlink(REPO / "tools", dst / "tools")
    os.symlink(REPO / "wespk", dst / "wespk")
    return dst


def recipe_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.pop("VOXCELEB_BASE_URL", None)
    env.pop("VOXCELEB_USER", None)
    env.pop("VOXCELEB_PASSWORD", None)
    env["DOWNLOAD_RETRY_DELAY"] = "0"
    env["OMP_NUM_THREADS"] = "1"
    return env


def run(cmd: Sequence[str], cwd: Path, timeout: float = 300, check: bool = True,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(cmd), cwd=cwd, env=env or recipe_env(), capture_output=True, text=True,
                          timeout=timeout)
    if check:
        assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def validate(data_dir: Path) -> str:
    proc = subprocess.run(["bash", str(REPO / "tools" / "validate_data_dir.sh"), str(data_dir)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def read_lines(path: Path) -> List[str]:
    return path.read_text(encoding="utf-8").splitlines()


def wait_for(predicate, timeout: float = 10.0) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def make_cnceleb_trees(root: Path) -> Dict[str, object]:
    """Miniature CN-Celeb_flac and CN-Celeb2_flac trees (FLAC), shaped like the releases.

    CN-Celeb1: 3 training speakers (dev/dev.lst), 2 evaluation speakers with
    data/ utterances, eval/enroll (the concatenations), eval/test and the
    three lists (which name .wav files, as the release's lists do).
    CN-Celeb2: 2 speakers and spk.lst. Returns what the conversion must give.
    """
    cn1, cn2 = root / "CN-Celeb_flac", root / "CN-Celeb2_flac"
    names = ["interview-01-001", "singing-01-002", "speech-02-001", "vlog-03-004"]
    seconds = [2.5, 7.0, 2.8, 6.5]
    n = 0
    for spk in ("id00000", "id00001", "id00002", "id00800", "id00801"):
        for name, sec in zip(names, seconds):
            write_audio(cn1 / "data" / spk / f"{name}.flac", sec, seed=2000 + n, fmt="FLAC")
            n += 1
    (cn1 / "dev").mkdir(parents=True)
    (cn1 / "dev" / "dev.lst").write_text("id00000\nid00001\nid00002\n")
    for spk in ("id10000", "id10001"):
        for name, sec in zip(names, seconds):
            write_audio(cn2 / "data" / spk / f"{name}.flac", sec, seed=3000 + n, fmt="FLAC")
            n += 1
    (cn2 / "spk.lst").write_text("id10000\nid10001\n")

    enroll_lst, enroll_map, tests = [], [], []
    for spk in ("id00800", "id00801"):
        write_audio(cn1 / "eval" / "enroll" / f"{spk}-enroll.flac", 9.0, seed=4000 + n, fmt="FLAC")
        n += 1
        enroll_lst.append(f"{spk}-enroll enroll/{spk}-enroll.wav")
        enroll_map.append(f"{spk}-enroll {spk}/{names[0]}.wav {spk}/{names[1]}.wav")
        for name in names[2:] + ["movie-05-010"]:
            write_audio(cn1 / "eval" / "test" / f"{spk}-{name}.flac", 3.0, seed=5000 + n, fmt="FLAC")
            n += 1
            tests.append(f"{spk}-{name}")
    official, kaldi = [], []
    for spk in ("id00800", "id00801"):
        for test in tests:
            same = test.startswith(spk)
            official.append(f"{spk}-enroll test/{test}.wav {int(same)}")
            kaldi.append(f"{spk}-enroll {test} {'target' if same else 'nontarget'}")
    lists = cn1 / "eval" / "lists"
    lists.mkdir(parents=True)
    (lists / "enroll.lst").write_text("\n".join(enroll_lst) + "\n")
    (lists / "enroll.map").write_text("\n".join(enroll_map) + "\n")
    (lists / "trials.lst").write_text("\n".join(official) + "\n")
    return {"cn1": cn1, "cn2": cn2, "tests": sorted(tests), "trials": kaldi, "names": names}
