"""No tracked file installs or requires the distribution named ``imagespec``.

That name on the package index belongs to an unrelated project (an e-paper label renderer): a
``pip install imagespec``, an ``imagespec==<version>`` in an image's install step or ``"imagespec"``
in a requirements list fetches it, never this project, which is the ``imagespec-build``
distribution imported as ``imagespec``. The scan looks at every file ``git ls-files`` lists, in
the places a requirement can hide: install commands (pip, uv, pipx, poetry), pinned requirement
strings, requirements files, pyproject tables, YAML package lists and the ``packages=`` lists of
Python calls. A line that names the foreign distribution on purpose without installing it (an
assertion that it is absent) carries ``dist-guard: ok``.
"""

from __future__ import annotations

import ast
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = "imagespec-build"
FOREIGN = "imagespec"
MARKER = "dist-guard: ok"
# This file spells the forbidden forms out as cases, on purpose.
SELF = Path(__file__).resolve().relative_to(ROOT).as_posix()

# A requirement with a version (or a placeholder for one: `{VERSION}`, `<version>`) or a direct
# reference: `imagespec==1.0`, `imagespec @ URL`. A bare `"imagespec=="` is a search for one.
PINNED = re.compile(
    r"(?<![\w.\-/@])(?P<name>imagespec(?:[-_.]+build)?)\s*(?:\[[^\]]*\])?\s*"
    r"(?:(?:===|==|~=|!=|>=|<=)\s*[\w{*$<]|@\s+\S)",
    re.IGNORECASE,
)
# An install command and the rest of its line, up to where a shell or a sentence would end it.
INSTALL = re.compile(
    r"\b(?:(?:python[\d.]*\s+-m\s+)?pip3?\s+install|uv\s+pip\s+install|pipx\s+install"
    r"|(?:uv|poetry|pdm|hatch)\s+add)\b(?P<args>[^\n`;&|]*)"
)
REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?:[<>=!~@;].*)?$")
# Keyword arguments and methods whose strings are packages to install (ImageSpec and setup()).
PACKAGE_KEYWORDS = {"packages", "runtime_packages", "pinned_packages", "install_requires", "requires"}
PACKAGE_METHODS = {"with_packages", "with_runtime_packages"}


@dataclass(frozen=True)
class Hit:
    path: str
    line: int
    name: str  # normalised distribution name
    text: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.text.strip()[:160]}"


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(token: str) -> str | None:
    m = REQUIREMENT.match(token.strip().strip("'\""))
    return normalise(m["name"]) if m else None


def install_args(args: str) -> list[str]:
    """The requirement-looking arguments of one install command; a token that ends a clause
    (``,``, ``.``, ``)``) ends the command, so prose after it is not read as packages."""
    try:
        tokens = shlex.split(args, comments=True)
    except ValueError:
        tokens = args.split()
    names = []
    for token in tokens:
        end = token.endswith((",", ".", ")", ":"))
        token = token.rstrip(",.):").strip("'\"")
        if token and not token.startswith(("-", "$", "/", ".")):
            name = requirement_name(token)
            if name:
                names.append(name)
        if end:
            break
    return names


def scan_line(line: str) -> list[str]:
    """Normalised names that ``line`` installs or pins (as text: any kind of file)."""
    if MARKER in line:
        return []
    names = [normalise(m["name"]) for m in PINNED.finditer(line)]
    for m in INSTALL.finditer(line):
        names += install_args(m["args"])
    return [n for n in names if n in (FOREIGN, OURS)]


def line_of(lines: list[str], needle: str) -> int:
    for i, line in enumerate(lines, 1):
        if needle in line:
            return i
    return 1


def toml_requirements(text: str) -> list[str]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return []  # a fixture that is not TOML on purpose; its lines were still scanned as text
    project = data.get("project", {})
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    reqs += data.get("build-system", {}).get("requires", [])
    for group in data.get("dependency-groups", {}).values():
        reqs += [r for r in group if isinstance(r, str)]
    reqs += list(data.get("tool", {}).get("poetry", {}).get("dependencies", {}))
    return [r for r in reqs if isinstance(r, str)]


def python_requirements(text: str) -> list[tuple[int, str]]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        values = [k.value for k in node.keywords if k.arg in PACKAGE_KEYWORDS]
        if isinstance(node.func, ast.Attribute) and node.func.attr in PACKAGE_METHODS:
            values += node.args
        for value in values:
            items = value.elts if isinstance(value, (ast.List, ast.Tuple, ast.Set)) else [value]
            found += [
                (item.lineno, item.value)
                for item in items
                if isinstance(item, ast.Constant) and isinstance(item.value, str)
            ]
    return found


def scan_file(path: str, text: str) -> list[Hit]:
    lines = text.splitlines()
    hits = [Hit(path, i, n, line) for i, line in enumerate(lines, 1) for n in scan_line(line)]
    name = path.rsplit("/", 1)[-1]
    structured: list[tuple[int, str]] = []
    if name == "pyproject.toml":
        structured = [(line_of(lines, r), r) for r in toml_requirements(text)]
    elif re.fullmatch(r"(requirements|constraints)[\w.-]*\.(txt|in)", name):
        structured = [(i, line.split("#")[0]) for i, line in enumerate(lines, 1)]
    elif name.endswith((".yaml", ".yml")):
        structured = [
            (i, m[1]) for i, line in enumerate(lines, 1) if (m := re.match(r"\s*-\s+(\S+)\s*$", line))
        ]
    elif name.endswith(".py"):
        structured = python_requirements(text)
    for lineno, req in structured:
        got = requirement_name(req)
        line = lines[lineno - 1] if 0 < lineno <= len(lines) else req
        if got in (FOREIGN, OURS) and MARKER not in line:
            hit = Hit(path, lineno, got, line)
            if hit not in hits:
                hits.append(hit)
    return hits


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
    if out.returncode != 0:
        pytest.fail(f"git ls-files failed in {ROOT}: {out.stderr.decode(errors='replace')}", pytrace=False)
    return [p for p in out.stdout.decode().split("\0") if p and p != SELF]


def scan_tree() -> list[Hit]:
    hits: list[Hit] = []
    for path in tracked():
        try:
            text = (ROOT / path).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError, IsADirectoryError):
            continue  # binary, or deleted in the work tree and not yet committed
        hits += scan_file(path, text)
    return hits


@pytest.fixture(scope="module")
def hits() -> list[Hit]:
    return scan_tree()


def test_no_tracked_file_installs_the_foreign_distribution(hits: list[Hit]) -> None:
    foreign = [h for h in hits if h.name == FOREIGN]
    assert not foreign, (
        f"these lines install or require the distribution {FOREIGN!r}, which on the package index is an "
        f"unrelated project: use {OURS!r} (imported as imagespec), or mark a line that only names it "
        f"with '{MARKER}':\n" + "\n".join(map(str, foreign))
    )


def test_the_scan_finds_our_own_requirements(hits: list[Hit]) -> None:
    """Not vacuous: the same scan sees the install lines it is meant to let through."""
    ours = {h.path for h in hits if h.name == OURS}
    expected = {
        "README.md",
        "docs/install.md",
        "python/imagespec/_flytekit.py",
        ".github/workflows/release.yml",
    }
    assert expected <= ours, f"the scan found {OURS} installs only in {sorted(ours)}"


@pytest.mark.parametrize(
    "line",
    [
        "pip install imagespec",
        "python3 -m pip install 'imagespec[flytekit]'",
        "uv pip install imagespec>=0.1",
        'args.push(format!("imagespec=={}", env!("CARGO_PKG_VERSION")))',
        '"/opt/venv/bin/python -m pip install \\"$@\\"\\n", "imagespec", "", "imagespec=={VERSION}"]',
        "(pip install 'imagespec[native]', or set IMAGESPEC_UV)",
        'dependencies = ["Imagespec ~= 0.4"]',
        "the image gets `imagespec==<version>` from the index",
        "pip install imagespec @ https://example.com/imagespec-0.4.1.tar.gz",
        "imagespec @ file:///wheels/imagespec-0.4.1-py3-none-any.whl",
        "poetry add imagespec",
    ],
)
def test_foreign_installs_are_seen(line: str) -> None:
    assert FOREIGN in scan_line(line)


@pytest.mark.parametrize(
    "line",
    [
        "pip install imagespec-build",
        "pip install 'imagespec_build[flytekit,native]' flytekit",
        "the `imagespec-build` distribution, imported as `imagespec`",
        "pip install imagespec-build, then import imagespec in Python",
        'parser = argparse.ArgumentParser(prog="imagespec")',
        "if imagespec.__version__ == other:",
        "imagespec build examples/images.py",
        """assert 'imagespec==' not in text and '"imagespec==' not in other""",
        f"ImageSpec(packages=['imagespec==0.4.1'])  # refused: {MARKER}",
    ],
)
def test_other_lines_are_not_foreign(line: str) -> None:
    assert FOREIGN not in scan_line(line)


@pytest.mark.parametrize(
    ("name", "text", "line"),
    [
        ("pyproject.toml", '[project]\nname = "x"\ndependencies = ["imagespec"]\n', 3),
        ("requirements-dev.txt", "six\nimagespec  # label renderer\n", 2),
        ("image.yaml", "packages:\n  - pandas\n  - imagespec\n", 3),
        ("images.py", 'spec = ImageSpec(\n    packages=["pandas",\n        "imagespec"])\n', 3),
        ("images.py", 'spec = base.with_runtime_packages(["imagespec"])\n', 1),
    ],
)
def test_requirement_lists_are_read(name: str, text: str, line: int) -> None:
    found = [(h.name, h.line) for h in scan_file(name, text)]
    assert (FOREIGN, line) in found


def test_requirement_lists_of_ours_pass() -> None:
    text = '[project]\nname = "imagespec-build"\n[project.optional-dependencies]\n'
    text += 'all = ["imagespec-build[native]"]\n'
    assert [(h.name, h.line) for h in scan_file("pyproject.toml", text)] == [(OURS, 4)]


def test_our_pyproject_names_our_distribution() -> None:
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["name"] == OURS
    assert {"flytekit", "native"} <= set(data["project"]["optional-dependencies"])
