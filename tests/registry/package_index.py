"""A package index of the test's own: pure-Python wheels made on the spot and served as a PEP 503
"simple" index over plain HTTP, so that an install reads nothing from the public index.

    root = tmp / "index"
    add_wheel(root, "heavy-blob", {"heavy_blob/data.bin": os.urandom(20 << 20)})
    with serve_index(root, "127.0.0.1") as url:   # http://127.0.0.1:PORT/simple
        ...
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def add_wheel(root: Path, name: str, files: dict[str, bytes], version: str = "1.0") -> Path:
    """Writes a py3-none-any wheel of ``name`` holding ``files`` (stored, not compressed) under
    ``root/files`` and its project page under ``root/simple``; returns the wheel."""
    dist = name.replace("-", "_")
    info = f"{dist}-{version}.dist-info"
    content = {
        **files,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = io.StringIO()
    for path, data in content.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{path},sha256={digest},{len(data)}\n")
    record.write(f"{info}/RECORD,,\n")
    (root / "files").mkdir(parents=True, exist_ok=True)
    wheel = root / "files" / f"{dist}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w", zipfile.ZIP_STORED) as z:
        for path, data in content.items():
            z.writestr(path, data)
        z.writestr(f"{info}/RECORD", record.getvalue())
    page = root / "simple" / name
    page.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    with (page / "index.html").open("a") as f:
        f.write(f'<a href="../../files/{wheel.name}#sha256={sha}">{wheel.name}</a>\n')
    return wheel


@contextmanager
def serve_index(root: Path, host: str) -> Iterator[str]:
    """Serves ``root`` on ``host`` (a free port) for the block; yields the index URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, directory=str(root), **kw)  # type: ignore[arg-type]

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer((host, 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
