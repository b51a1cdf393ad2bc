"""The build progress of `imagespec build`: live lines on a terminal (a real pty), plain lines in a
pipe, a summary table on stdout, and the failure's reason either way."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

MODULE = """
import time
from imagespec import ImageBuildEngine, ImageSpec

class Slow:
    def build_image(self, spec):
        time.sleep(1.2)  # long enough for the live display to tick
        if "broken" in spec.name:
            raise RuntimeError("the build broke on purpose")
        return spec.image_name()

ImageBuildEngine.register("slow", Slow(), priority=9)
a = ImageSpec(name="progress-a", registry="localhost:1", python_version="3.11", builder="slow")
b = ImageSpec(name="progress-b", registry="localhost:1", python_version="3.11", builder="slow")
"""


def write_module(tmp_path: Path, broken: bool = False) -> Path:
    text = MODULE + (
        'c = ImageSpec(name="broken", registry="localhost:1", builder="slow")\n' if broken else ""
    )
    path = tmp_path / "wf.py"
    path.write_text(text)
    return path


def run_with_pty_stderr(args: list[str], cwd: Path) -> tuple[int, str, str]:
    """Runs the CLI with stderr on a pseudo-terminal and stdout on a pipe."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "imagespec", *args], cwd=cwd, stdout=subprocess.PIPE, stderr=slave
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read().decode()
    code = proc.wait(timeout=30)
    os.close(master)
    return code, out, b"".join(chunks).decode(errors="replace")


def test_on_a_terminal_each_image_is_one_line_rewritten_in_place(tmp_path: Path) -> None:
    write_module(tmp_path)
    code, out, err = run_with_pty_stderr(["build", "--force-push", "wf.py"], tmp_path)
    assert code == 0, err
    assert "\x1b[2K" in err and "\x1b[J" in err  # lines cleared and redrawn
    assert "building with slow" in err and "built in" in err
    assert "[1s]" in err  # the elapsed time ticks while a build runs
    final = err.rsplit("\x1b[J", 1)[-1]  # the last redraw: one line per image
    lines = [line.replace("\x1b[2K", "") for line in final.strip().splitlines()]
    assert len(lines) == 2 and all("built in" in line for line in lines), lines
    table = out.splitlines()
    assert table[0].split()[:3] == ["OUTCOME", "TIME", "BUILDER"]
    assert [row.split()[0] for row in table[1:]] == ["built", "built"]


def test_in_a_pipe_every_event_is_a_plain_line(tmp_path: Path) -> None:
    write_module(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "imagespec", "build", "--force-push", "wf.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "\x1b[" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert sum(line.startswith("building localhost:1/progress-") for line in lines) == 2
    assert sum(line.startswith("built    localhost:1/progress-") for line in lines) == 2


def test_a_failure_shows_its_reason_and_the_others_still_report(tmp_path: Path) -> None:
    write_module(tmp_path, broken=True)
    code, out, err = run_with_pty_stderr(["build", "--force-push", "wf.py"], tmp_path)
    assert code == 1
    assert "failed localhost:1/broken:" in err
    assert 'builder "slow": build_image raised RuntimeError: the build broke on purpose' in err
    outcomes = sorted(row.split()[0] for row in out.splitlines()[1:4])
    assert outcomes == ["built", "built", "failed"]
    assert "failed localhost:1/broken:" in out and "the build broke on purpose" in out
