"""The build progress the CLI shows: one live line per image on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from imagespec._engine import BuildEvent, BuildReport

_TAIL_LINES = 20


class Progress:
    """Receives the plan's events (from any thread) and shows them on ``stream`` (stderr).

    On a terminal each image has one line, rewritten in place (state, current step, elapsed
    time); elsewhere every event is one plain line. A failure's log tail is printed in full in
    both cases. ``verbose`` prints every engine step as its own line.
    """

    def __init__(
        self, stream: TextIO | None = None, *, verbose: bool = False, live: bool | None = None
    ) -> None:
        self.stream = stream or sys.stderr
        self.verbose = verbose
        self.live = self.stream.isatty() if live is None else live
        self.lock = threading.Lock()
        self.order: list[str] = []
        self.state: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.drawn = 0
        self.stop = threading.Event()
        self.ticker: threading.Thread | None = None

    # The plan calls this from its worker threads.
    def __call__(self, e: BuildEvent) -> None:
        with self.lock:
            if self.live:
                self._live(e)
            else:
                self._plain(e)

    def __enter__(self) -> Progress:
        if self.live:
            self.ticker = threading.Thread(target=self._tick, daemon=True)
            self.ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.ticker is not None:
            self.ticker.join()
        with self.lock:
            if self.live:
                self._draw()

    def _tick(self) -> None:
        while not self.stop.wait(0.5):
            with self.lock:
                if any(i in self.started and i not in self.finished for i in self.order):
                    self._draw()

    def _plain(self, e: BuildEvent) -> None:
        if e.kind == "step" and not self.verbose:
            return
        print(_line(e), file=self.stream, flush=True)

    def _live(self, e: BuildEvent) -> None:
        if e.kind == "step" and self.verbose:
            self._print_above(f"  {e.image}: {e.message}")
        if e.image is None:
            if e.kind == "checking":
                self._print_above(f"checking {e.count} image(s)")
            elif e.kind == "warning":
                self._print_above(f"warning  {e.message}")
            return
        if e.image not in self.state:
            self.order.append(e.image)
        now = time.monotonic()
        if e.kind == "building":
            self.started[e.image] = now
            self.state[e.image] = f"building with {e.message}"
        elif e.kind == "step":
            self.state[e.image] = f"building: {_short(e.message or '')}"
        elif e.kind == "pushing":
            self.state[e.image] = "pushing"
        elif e.kind == "done":
            self.finished[e.image] = now
            self.state[e.image] = f"built in {e.seconds or 0:.1f} s"
        elif e.kind == "failed":
            self.finished[e.image] = now
            first = (e.message or "").splitlines()[0] if e.message else ""
            self.state[e.image] = f"failed: {_short(first)}"
            if e.message:  # the whole reason (with the engine's log tail), above the live lines
                head, _, rest = e.message.partition("\n")
                self._print_above(f"failed {e.image}: {head}" + ("\n" + _tail(rest) if rest else ""))
        elif e.kind in ("exists", "missing", "unknown", "warning"):
            self.state[e.image] = e.kind if not e.message else f"{e.kind}: {_short(e.message)}"
        self._draw()

    def _print_above(self, text: str) -> None:
        self._erase()
        print(text, file=self.stream)
        self._draw()

    def _erase(self) -> None:
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self) -> None:
        self._erase()
        now = time.monotonic()
        for image in self.order:
            elapsed = ""
            if image in self.started:
                end = self.finished.get(image, now)
                elapsed = f" [{end - self.started[image]:.0f}s]"
            self.stream.write(f"\x1b[2K{image}  {self.state[image]}{elapsed}\n")
        self.drawn = len(self.order)
        self.stream.flush()


def _short(text: str, width: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _tail(message: str) -> str:
    lines = message.splitlines()
    return "\n".join("    " + line for line in lines[-_TAIL_LINES:])


def _line(e: BuildEvent) -> str:
    if e.kind == "checking":
        return f"checking {e.count} image(s)"
    if e.kind == "step":
        return f"  {e.image}: {e.message}"
    if e.kind == "building":
        return f"building {e.image} with {e.message}"
    if e.kind == "done":
        return f"built    {e.message} in {e.seconds or 0:.1f} s"
    if e.kind == "warning" and e.image is None:
        return f"warning  {e.message}"
    if e.kind in ("failed", "unknown", "warning", "missing"):
        return f"{e.kind:<8} {e.image}: {e.message}"
    return f"{e.kind:<8} {e.image}"


def summary_table(report: BuildReport) -> str:
    """The report as a table: outcome, seconds, builder, name (and the reason of what did not build,
    or how an image was built when it was not the usual way: source only, or a full build after a
    dependencies image that could not be used)."""
    rows = [("OUTCOME", "TIME", "BUILDER", "IMAGE")]
    for r in report:
        rows.append(
            (r.outcome, f"{r.seconds:.1f}s" if r.outcome == "built" else "-", r.builder or "-", r.name)
        )
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = []
    for row in rows:
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3])
    for r in report:
        if r.reason and r.outcome in ("failed", "assumed", "skipped", "built"):
            first = r.reason.splitlines()[0]
            lines.append(f"{r.outcome} {r.image}: {first}")
    return "\n".join(lines)
