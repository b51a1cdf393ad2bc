"""Collects the ImageSpec declarations published in flytesnacks, flytekit and unionai-examples.

    python tests/compat/published/extract.py [--mirror DIR] [--flytekit-python PYTHON]

reads bare git snapshots at DIR/<owner>+<name>/repo (default /work/.mirror, or $IMAGESPEC_MIRROR)
and writes, next to this file, specs.json (the calls of the Apache-2.0 repositories, with their
text) and unionai-examples.json (that repository has no licence: its calls' places, hashes,
bindings and flytekit's results, no text). flytekit's results are made by evaluate.py run with
PYTHON (default: the venv of scripts/flytekit-venv.sh). See README.md.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import hashlib
import io
import json
import os
import re
import subprocess
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
# (repository, licence, whether its text may be kept here)
REPOS = (
    ("flyteorg/flytesnacks", "Apache-2.0", True),
    ("flyteorg/flytekit", "Apache-2.0", True),
    ("unionai/unionai-examples", "none: no LICENSE file in the repository", False),
)
EXTENSIONS = (".py", ".md", ".rst", ".ipynb")
# flytekit's own unit tests of ImageSpec: vendored and run by tests/compat/test_flytekit_suite.py.
IMAGE_SPEC_TESTS = ("tests/flytekit/unit/core/image_spec/", "plugins/flytekit-envd/tests/test_image_spec.py")
PACKAGES = ("flytekit", "fl", "union")  # names of packages the examples take ImageSpec from
ELIDED = "`...` stands for what the text leaves out"


# ---------------------------------------------------------------------------------- finding calls


@dataclass(frozen=True)
class Found:
    """One ImageSpec call in a file: where, how it was found, and its source text."""

    path: str
    line: int  # 1-based; in a notebook, the line in its cell
    cell: int | None  # a notebook's cell index
    how: str  # "ast" (Python's ast), "text" (by brackets: docs, docstrings, unparsable code), "comment"
    text: str


# The start of a call: ImageSpec(, a dotted name ending in it (fl.ImageSpec(), or .from_env(; in
# prose, `ImageSpec (the class)` is no call.
START = re.compile(r"(?<![\w.])((?:[A-Za-z_]\w*\.)*ImageSpec)(?:\.from_env)?\(")
CHAIN = re.compile(r"\s*\.\s*(?:with_\w+|force_push)\s*\(")


def closing(text: str, i: int) -> int | None:
    """The index after the bracket that closes the one at text[i], skipping strings and comments."""
    depth = 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            quote = text[i : i + 3] if text[i : i + 3] in ('"""', "'''") else c
            i += len(quote)
            while i < len(text) and not text.startswith(quote, i):
                i += 2 if text[i] == "\\" else 1
            i += len(quote)
            continue
        if c == "#":
            i = text.find("\n", i)
            if i < 0:
                return None
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return None


def normalised(call: str, line: str) -> str:
    """The call's text, its other lines without the indentation of the `line` it starts on.

    The same call, in a function or at the top of a module, is then the same text."""
    indent = len(line) - len(line.lstrip())
    first, *rest = call.split("\n")
    return "\n".join([first] + [r[indent:] if not r[:indent].strip() else r.lstrip() for r in rest])


Calls = list[tuple[int, str, str]]  # (line, how, text)


def scan(text: str, first_line: int) -> Calls:
    """Calls in text that is not Python as a whole (docs, docstrings, comments), by brackets."""
    out = []
    pos = 0
    while (m := START.search(text, pos)) is not None:
        pos = m.end()
        end = closing(text, m.end() - 1)
        if end is None:
            continue
        while (chain := CHAIN.match(text, end)) is not None and (after := closing(text, chain.end() - 1)):
            end = after
        line_start = text.rfind("\n", 0, m.start()) + 1
        how = "comment" if text[line_start : m.start()].lstrip().startswith("#") else "text"
        call = normalised(text[m.start() : end], text[line_start : m.start()])
        out.append((first_line + text.count("\n", 0, m.start()), how, call))
        pos = end
    return out


def is_spec_call(node: ast.AST) -> bool:
    """ImageSpec(...), fl.ImageSpec(...) or ImageSpec.from_env(...)."""
    func = node.func if isinstance(node, ast.Call) else None
    if isinstance(func, ast.Attribute) and func.attr == "from_env":
        func = func.value
    return (isinstance(func, ast.Name) and func.id == "ImageSpec") or (
        isinstance(func, ast.Attribute) and func.attr == "ImageSpec"
    )


def in_docstrings(tree: ast.Module, first_line: int) -> Calls:
    out: Calls = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc and "ImageSpec" in doc:
                out += scan(doc, first_line + node.body[0].lineno - 1)
    return out


def in_code(code: str, first_line: int) -> Calls:
    """Calls in Python source by its ast (a with_* chain is one call), in its comments and docstrings."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return scan(code, first_line)
    parent = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    outermost: dict[ast.AST, None] = {}
    for call in filter(is_spec_call, ast.walk(tree)):
        while (
            isinstance(attr := parent.get(call), ast.Attribute)
            and (attr.attr.startswith("with_") or attr.attr == "force_push")
            and isinstance(chained := parent.get(attr), ast.Call)
            and chained.func is attr
        ):
            call = chained
        outermost[call] = None
    out: Calls = []
    lines = code.split("\n")
    for call in outermost:
        assert isinstance(call, ast.Call)
        segment = ast.get_source_segment(code, call)
        assert segment is not None
        out.append((first_line + call.lineno - 1, "ast", normalised(segment, lines[call.lineno - 1])))
    # Comments on consecutive lines are one text (flytesnacks writes its docs as Markdown in them),
    # without their `#` and a Markdown quote's `>`.
    blocks: dict[int, list[str]] = {}
    last = -2
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            if tok.start[0] != last + 1:
                blocks[tok.start[0]] = []
            list(blocks.values())[-1].append(re.sub(r"^#+ ?(?:> ?)?", "", tok.string))
            last = tok.start[0]
    for row, comment in blocks.items():
        text = "\n".join(comment)
        if "ImageSpec" in text:
            out += [(line, "comment", call) for line, _, call in scan(text, first_line + row - 1)]
    return out + in_docstrings(tree, first_line)


def calls_in_file(path: str, text: str, docstrings_only: bool) -> list[Found]:
    """Every call in one file; in flytekit's library modules, those of its docstrings only."""
    found: list[tuple[int | None, Calls]] = []
    if path.endswith(".ipynb"):
        for index, cell in enumerate(json.loads(text).get("cells", [])):
            source = cell.get("source", "")
            source = "".join(source) if isinstance(source, list) else source
            if cell.get("cell_type") == "code":
                # IPython's magics (%pip, !ls) are no Python: blanked, keeping the line numbers
                lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
                found.append((index, in_code("\n".join(lines), 1)))
            else:
                found.append((index, scan(source, 1)))
    elif path.endswith(".py") and docstrings_only:
        found.append((None, in_docstrings(ast.parse(text), 1)))
    elif path.endswith(".py"):
        found.append((None, in_code(text, 1)))
    else:
        found.append((None, scan(text, 1)))
    return [Found(path, line, cell, how, call) for cell, calls in found for line, how, call in calls]


# ---------------------------------------------------------------------------------- free names


def bind(name: str, keyword: str | None, environ: list[str]) -> tuple[str, str] | None:
    """A value a user running the example would have for the free `name` (passed as `keyword`).

    Python source evaluated by evaluate.py, where WORKDIR is an empty working folder,
    `module_like(...)` an imported package whose ImageSpec is the tool's and `os_like(...)` the os
    module with only the given variables set (of those the call reads: `environ`); and the rule's
    name. None: no rule, the call needs a real object."""
    upper = name.upper()
    if name == "os":
        found = {var: bind(var, None, []) for var in environ}
        return f"os_like({{{', '.join(f'{v!r}: {b[0]}' for v, b in found.items() if b)}}})", "os, environment"
    if name in ("sys", "pathlib"):
        return name, "module"
    if name == "Path":
        return "pathlib.Path", "module"
    if name in PACKAGES:
        return "module_like(__version__='1.16.0')", "package"
    if name == "__file__":
        return "os.path.join(WORKDIR, 'workflow.py')", "path"
    if "REGISTRY" in upper:
        return "'localhost:30000'", "registry"
    if keyword == "builder" or "BUILDER" in upper:
        return "'default'", "builder"
    if keyword == "python_version" or "PYTHON_VERSION" in upper:
        return "'3.11'", "python version"
    if "VERSION" in upper:
        return "'1.16.0'", "version"
    if keyword in ("source_root", "requirements", "registry_config") or any(
        word in upper for word in ("PATH", "DIR", "ROOT", "FOLDER")
    ):
        return "WORKDIR", "path"
    if name.isupper() and keyword is not None:
        # a module constant in a string field, an f-string or a dict of strings
        return repr(name.lower().replace("_", "-")), "constant"
    return None


def environ_read(call: ast.expr) -> list[str]:
    """The environment variables the call reads by os.getenv, os.environ.get or os.environ[...]."""
    names = []
    for node in ast.walk(call):
        target = None
        if (
            isinstance(node, ast.Call)
            and node.args
            and ast.unparse(node.func) in ("os.getenv", "os.environ.get")
        ):
            target = node.args[0]
        elif isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            target = node.slice
        if isinstance(target, ast.Constant) and isinstance(target.value, str) and target.value not in names:
            names.append(target.value)
    return names


def free_uses(call: ast.expr, text: str) -> tuple[list[str], dict[str, str | None]]:
    """The largest expressions of the call built on free names, and each free name's keyword."""
    local = {
        target.id
        for node in ast.walk(call)
        if isinstance(node, ast.comprehension)
        for target in ast.walk(node.target)
        if isinstance(target, ast.Name)
    }
    local |= {a.arg for node in ast.walk(call) if isinstance(node, ast.Lambda) for a in node.args.args}
    bound = {"ImageSpec"} | local | set(dir(builtins))
    keyword: dict[str, str | None] = {}
    exprs: list[str] = []

    def visit(node: ast.AST, kw: str | None) -> None:
        if isinstance(node, ast.keyword):
            kw = node.arg
        if is_spec_reference(node):
            # fl.ImageSpec(...).with_x(...): the arguments may use free names, the reference does not
            if isinstance(node, ast.Call):
                for child in [*node.args, *node.keywords, node.func]:
                    visit(child, kw)
            elif isinstance(node, ast.Attribute) and node.attr != "ImageSpec":
                visit(node.value, kw)
            elif isinstance(node, ast.Attribute) and isinstance(root := node.value, ast.Name):
                keyword.setdefault(root.id, None)  # the package of fl.ImageSpec is free, though not used
            return
        root = node
        while isinstance(root, (ast.Attribute, ast.Call, ast.Subscript)):
            root = root.func if isinstance(root, ast.Call) else root.value
        if isinstance(root, ast.Name) and root.id not in bound:
            segment = ast.get_source_segment(text, node)
            if segment and segment not in exprs:
                exprs.append(segment)
            # the names inside (Path(__file__)) are free too; the expression is one use
            for inner in ast.walk(node):
                if isinstance(inner, ast.Name) and inner.id not in bound:
                    keyword.setdefault(inner.id, kw)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, kw)

    visit(call, None)
    return exprs, keyword


def is_spec_reference(node: ast.AST) -> bool:
    """`fl.ImageSpec`, or a call or with_* chain on it: the package is bound, but is no free use."""
    while isinstance(node, (ast.Attribute, ast.Call)):
        if isinstance(node, ast.Attribute) and node.attr == "ImageSpec":
            return True
        node = node.func if isinstance(node, ast.Call) else node.value
    return False


def entry_for(text: str) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": hashlib.sha256(text.encode()).hexdigest()[:16],
        "text": text,
        "free_names": [],
        "free_expressions": [],
        "bindings": {},
    }
    try:
        call = ast.parse(text, mode="eval").body
    except SyntaxError as e:
        entry["not_evaluated"] = ELIDED if "..." in text else f"not a Python expression: {e.msg}"
        return entry
    exprs, keyword = free_uses(call, text)
    entry.update(free_names=sorted(keyword), free_expressions=exprs)
    unbound = []
    for name in sorted(keyword):
        found = bind(name, keyword[name], environ_read(call))
        if found is None:
            unbound.append(name)
        else:
            entry["bindings"][name] = {"value": found[0], "rule": found[1]}
    if any(isinstance(node, ast.Constant) and node.value is Ellipsis for node in ast.walk(call)):
        entry["not_evaluated"] = ELIDED
    elif unbound:
        entry["not_evaluated"] = f"needs a real object for {', '.join(unbound)}"
    return entry


# ---------------------------------------------------------------------------------- snapshots


def git(gitdir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(gitdir), *args], capture_output=True, text=True, check=True
    ).stdout


def library_code(repo: str, path: str) -> bool:
    """flytekit's and its plugins' own modules: specs made from their variables, not declarations.

    Their docstrings are documentation, and are read."""
    if repo != "flyteorg/flytekit" or not path.endswith(".py"):
        return False
    parts = path.split("/")
    return parts[0] == "flytekit" or (
        parts[0] == "plugins" and len(parts) > 2 and parts[2] == "flytekitplugins"
    )


def read_blobs(gitdir: Path, paths: list[str]) -> dict[str, str | None]:
    """Each path's text at HEAD; None for a blob the snapshot lacks (large files may be absent)."""
    request = "".join(f"HEAD:{path}\n" for path in paths).encode()
    out = subprocess.run(
        ["git", "-C", str(gitdir), "cat-file", "--batch"], input=request, capture_output=True, check=True
    ).stdout
    texts: dict[str, str | None] = {}
    pos = 0
    for path in paths:
        header_end = out.index(b"\n", pos)
        header = out[pos:header_end].split()
        if header[-1] == b"missing":  # "HEAD:path missing"
            texts[path], pos = None, header_end + 1
            continue
        size = int(header[2])  # "<sha> blob <size>", the content, a line break
        texts[path] = out[header_end + 1 : header_end + 1 + size].decode("utf-8", "replace")
        pos = header_end + 1 + size + 1
    return texts


def collect(mirror: Path, repo: str) -> tuple[str, list[Found], list[str]]:
    gitdir = mirror / repo.replace("/", "+") / "repo"
    commit = git(gitdir, "rev-parse", "HEAD").strip()
    paths = [
        p
        for p in git(gitdir, "ls-tree", "-r", "HEAD", "--name-only").splitlines()
        if p.endswith(EXTENSIONS) and not (repo == "flyteorg/flytekit" and p.startswith(IMAGE_SPEC_TESTS))
    ]
    found: list[Found] = []
    unreadable = []
    for path, text in read_blobs(gitdir, paths).items():
        if text is None:
            unreadable.append(path)
        elif "ImageSpec" in text:
            found += calls_in_file(path, text, docstrings_only=library_code(repo, path))
    return commit, found, unreadable


def entries(repo: str, commit: str, found: list[Found]) -> list[dict[str, Any]]:
    """One entry per distinct call text, in the order of its first place."""
    by_text: dict[str, dict[str, Any]] = {}
    for f in sorted(found, key=lambda f: (f.path, f.cell or 0, f.line, f.text)):
        entry = by_text.get(f.text)
        if entry is None:
            entry = by_text[f.text] = entry_for(f.text)
            entry["sources"] = []
        source: dict[str, Any] = {"repo": repo, "commit": commit, "path": f.path, "line": f.line}
        if f.cell is not None:
            source["cell"] = f.cell
        source["found_in"] = f.how
        entry["sources"].append(source)
    return list(by_text.values())


def evaluate(python: str, tool: str, rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The tool's version and its result for each row (evaluate.py, in an empty folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "entries.json").write_text(json.dumps(rows))
        work = Path(tmp) / "work"
        work.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLYTE_", "IMAGESPEC_", "_F_"))}
        proc = subprocess.run(
            [python, str(HERE / "evaluate.py"), tool, str(Path(tmp) / "entries.json")],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return out["version"], out["results"]


def outcome(result: dict[str, Any]) -> dict[str, Any]:
    """A tool's result in short: made or the exception's type; for a spec, what could be asked of it."""
    if not result["ok"]:
        return {"ok": False, "error": result["error"]["type"]}
    return {"ok": True, **{what: result[what]["ok"] for what in ("id", "is_container", "image_name")}}


def vendored(mirror: Path) -> dict[str, Any]:
    """specs.json: the calls of the licensed repositories; one entry per text, with all its places."""
    corpus: dict[str, Any] = {"repositories": {}, "entries": []}
    merged: dict[str, dict[str, Any]] = {}
    for repo, licence, kept in REPOS:
        if not kept:
            continue
        commit, found, unreadable = collect(mirror, repo)
        rows = entries(repo, commit, found)
        meta = {"commit": commit, "license": licence, "calls": len(found), "distinct": len(rows)}
        corpus["repositories"][repo] = {**meta, "unreadable": unreadable}
        for row in rows:
            if row["key"] in merged:
                merged[row["key"]]["sources"] += row["sources"]
            else:
                merged[row["key"]] = row
    corpus["entries"] = list(merged.values())
    return corpus


def unlicensed(mirror: Path, repo: str, licence: str, python: str) -> dict[str, Any]:
    """A repository whose texts are not kept: places, keys, bindings and flytekit's results."""
    commit, found, unreadable = collect(mirror, repo)
    rows = entries(repo, commit, found)
    version, results = evaluate(python, "flytekit", [row for row in rows if "not_evaluated" not in row])
    for row in rows:
        del row["text"]  # their code, as are the expressions
        row.pop("free_expressions", None)
        if row["key"] in results:
            row["flytekit"] = outcome(results[row["key"]])
    meta = {"repository": repo, "commit": commit, "license": licence, "flytekit": version}
    return {**meta, "calls": len(found), "distinct": len(rows), "unreadable": unreadable, "entries": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mirror", type=Path, default=Path(os.environ.get("IMAGESPEC_MIRROR", "/work/.mirror"))
    )
    parser.add_argument("--flytekit-python", help="a Python with flytekit 1.16 (for unionai-examples)")
    args = parser.parse_args()
    corpus = vendored(args.mirror)
    (HERE / "specs.json").write_text(json.dumps(corpus, indent=1) + "\n")
    calls = sum(len(entry["sources"]) for entry in corpus["entries"])
    print(f"specs.json: {calls} calls, {len(corpus['entries'])} texts")
    python = args.flytekit_python
    if python is None:
        venv = subprocess.run(
            ["bash", str(ROOT / "scripts" / "flytekit-venv.sh")], capture_output=True, text=True, check=True
        )
        python = venv.stdout.strip().splitlines()[-1]
    for repo, licence, kept in REPOS:
        if not kept:
            other = unlicensed(args.mirror, repo, licence, python)
            name = repo.split("/")[1] + ".json"
            (HERE / name).write_text(json.dumps(other, indent=1) + "\n")
            print(f"{name}: {other['calls']} calls, {other['distinct']} texts (not kept)")


if __name__ == "__main__":
    main()
