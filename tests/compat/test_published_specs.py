"""Published ImageSpec declarations, constructed by flytekit and by imagespec.

The corpus (tests/compat/published/, see its README.md) holds every ImageSpec(...) call of
flytesnacks' examples and of flytekit's READMEs, docstrings and tests (its ImageSpec unit tests
aside), with plausible values bound to the names they use; unionai-examples' calls are read from
its snapshot, where there is one (that repository has no licence, so its texts are not kept here).

flytekit's rule for what a spec may be is its dataclass and __post_init__
(flytekit/image_spec/image_spec.py:92-180 at v1.16.24): a keyword it lacks is a TypeError, a
registry that is set (a non-empty string, line 120) and invalid a ValueError (120-130), a list
field that is no list of strings a ValueError (156-167), pip_secret_mounts and builder_options of
another type a ValueError (169-179); everything else is taken, and the spec has an id (182-205).
Ours must take what flytekit takes, and refuse what it refuses with the same exception type (or a
subclass), so that code written for flytekit's ImageSpec imports with ours.

Each tool runs once over a whole corpus (evaluate.py, in flytekit's venv with this checkout's
wheel on its path); the counts are printed (pytest -s shows them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ..flytekit_helpers import Flytekit

PUBLISHED = Path(__file__).resolve().parent / "published"
# What evaluating a text raises when its bindings are wrong, before any ImageSpec is called
UNBOUND = ("builtins.NameError", "builtins.SyntaxError")
MIRROR = Path(os.environ.get("IMAGESPEC_MIRROR", "/work/.mirror"))


def run_tool(
    fk: Flytekit, tool: str, rows: list[dict[str, Any]], tmp_path: Path
) -> tuple[str, dict[str, Any]]:
    """evaluate.py with one tool over every row, in an empty working folder: its version and results."""
    folder = tmp_path / tool
    folder.mkdir()
    entries = tmp_path / f"{tool}-entries.json"
    entries.write_text(json.dumps(rows))
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['evaluate.py', {tool!r}, {str(entries)!r}]\n"
        f"runpy.run_path({str(PUBLISHED / 'evaluate.py')!r}, run_name='__main__')\n"
    )
    out = json.loads(fk.run(code, cwd=folder).stdout.strip().splitlines()[-1])
    return out["version"], out["results"]


@dataclass
class Comparison:
    """Both tools' results over a corpus: the counts, and every difference the contract forbids."""

    calls: int
    distinct: int
    evaluated: int
    flytekit_ok: int = 0
    imagespec_ok: int = 0
    flytekit_named: int = 0
    imagespec_named: int = 0
    differences: dict[str, str] = field(default_factory=dict)  # entry key: what differs

    def summary(self, corpus: str) -> str:
        return (
            f"{corpus}: {self.calls} calls, {self.distinct} distinct, {self.evaluated} evaluated; "
            f"constructed: flytekit {self.flytekit_ok}, imagespec {self.imagespec_ok}; "
            f"named by image_name(): flytekit {self.flytekit_named}, imagespec {self.imagespec_named}"
        )


def where(row: dict[str, Any]) -> str:
    source = row["sources"][0]
    return f"{source['repo']}:{source['path']}:{source['line']}"


def compare(
    fk: Flytekit, rows: list[dict[str, Any]], tmp_path: Path
) -> tuple[Comparison, str, dict[str, Any]]:
    """Both tools over the rows; also flytekit's version and results."""
    evaluable = [row for row in rows if "not_evaluated" not in row]
    version, theirs = run_tool(fk, "flytekit", evaluable, tmp_path)
    _, ours = run_tool(fk, "imagespec", evaluable, tmp_path)
    c = Comparison(sum(len(row["sources"]) for row in rows), len(rows), len(evaluable))
    for row in evaluable:
        fk_result, result = theirs[row["key"]], ours[row["key"]]
        c.flytekit_ok += fk_result["ok"]
        c.imagespec_ok += result["ok"]
        c.flytekit_named += fk_result["ok"] and fk_result["image_name"]["ok"]
        c.imagespec_named += result["ok"] and result["image_name"]["ok"]
        problems = []
        if not fk_result["ok"] and fk_result["error"]["type"] in UNBOUND:
            problems.append(f"the entry's bindings do not make it Python: {fk_result['error']}")
        ours_did = "makes it" if result["ok"] else f"raises {result['error']}"
        if fk_result["ok"] and not result["ok"]:
            problems.append(f"flytekit makes it, imagespec {ours_did}")
        # the same type, or a subclass: flytekit's class among ours' classes
        elif not fk_result["ok"] and fk_result["error"]["type"] not in result.get("error", {}).get(
            "classes", ()
        ):
            problems.append(f"flytekit raises {fk_result['error']}, imagespec {ours_did}")
        if result["ok"]:
            if not (result["class"] == "ImageSpec" and result["id"]["ok"] and result["id"]["value"]):
                problems.append(f"imagespec's spec has no id: {result}")
            if not result["is_container"]["ok"]:
                problems.append(f"imagespec's is_container() fails: {result['is_container']}")
        if problems:
            c.differences[row["key"]] = f"{where(row)}: " + "; ".join(problems)
    return c, version, theirs


# Differences found by this test and not fixed yet, by entry key; the test below fails when one is
# fixed and still listed. (registry="", which flytekit reads as no registry, was one.)
KNOWN: dict[str, str] = {}


@pytest.fixture(scope="module")
def vendored(fk: Flytekit, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Comparison]:
    corpus = json.loads((PUBLISHED / "specs.json").read_text())
    c, _, _ = compare(fk, corpus["entries"], tmp_path_factory.mktemp("published"))
    print("\n" + c.summary("flytesnacks + flytekit"))
    for row in corpus["entries"]:
        if "not_evaluated" in row:
            print(f"  not evaluated: {where(row)}: {row['not_evaluated']}")
    for key, difference in c.differences.items():
        print(f"  {'known' if key in KNOWN else 'NEW'} difference: {difference}")
    return corpus, c


def test_published_declarations_flytekit_takes_are_taken(vendored: tuple[dict[str, Any], Comparison]) -> None:
    corpus, c = vendored
    new = {key: text for key, text in c.differences.items() if key not in KNOWN}
    assert not new, "\n".join(new.values())
    fixed = set(KNOWN) - set(c.differences)
    assert not fixed, f"fixed, remove from KNOWN: {', '.join(KNOWN[key] for key in fixed)}"
    assert c.calls == sum(repo["calls"] for repo in corpus["repositories"].values())
    # the corpus would prove nothing if flytekit made none of it, or if nothing was evaluated
    assert c.flytekit_ok > c.distinct / 2


# ------------------------------------------------------------------------ from the snapshots


def snapshots() -> Path:
    """The snapshots extract.py reads (from the search tool's fetch, or git clones --bare)."""
    missing = [
        repo
        for repo in ("flyteorg+flytesnacks", "flyteorg+flytekit", "unionai+unionai-examples")
        if not (MIRROR / repo / "repo").is_dir()
    ]
    if missing:
        # Not a component CI must have: the unionai-examples texts are another project's,
        # unlicensed, and kept out of this tree on purpose; these tests run where the snapshots are.
        pytest.skip(f"no snapshot of {', '.join(missing)} under {MIRROR} (IMAGESPEC_MIRROR)")
    return MIRROR


def extract_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("published_extract", PUBLISHED / "extract.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_the_corpus_is_what_extract_py_makes() -> None:
    mirror = snapshots()
    extract = extract_module()
    stored = json.loads((PUBLISHED / "specs.json").read_text())
    commits = {repo: meta["commit"] for repo, meta in stored["repositories"].items()}
    for repo in commits:
        head = extract.git(mirror / repo.replace("/", "+") / "repo", "rev-parse", "HEAD").strip()
        if head != commits[repo]:
            pytest.skip(f"the snapshot of {repo} is at {head}, specs.json at {commits[repo]}")
    assert extract.vendored(mirror) == stored


def test_unionai_examples_flytekit_takes_are_taken(fk: Flytekit, tmp_path: Path) -> None:
    mirror = snapshots()
    extract = extract_module()
    recorded = json.loads((PUBLISHED / "unionai-examples.json").read_text())
    commit, found, _ = extract.collect(mirror, recorded["repository"])
    if commit != recorded["commit"]:
        pytest.skip(f"the snapshot is at {commit}, unionai-examples.json at {recorded['commit']}")
    rows = extract.entries(recorded["repository"], commit, found)
    assert [(r["key"], r["bindings"], r["sources"]) for r in rows] == [
        (r["key"], r["bindings"], r["sources"]) for r in recorded["entries"]
    ]
    c, version, theirs = compare(fk, rows, tmp_path)
    print("\n" + c.summary("unionai-examples"))
    for row in rows:
        if "not_evaluated" in row:
            print(f"  not evaluated: {where(row)}: {row['not_evaluated']}")
    assert not c.differences, "\n".join(c.differences.values())
    if version == recorded["flytekit"]:
        assert {key: extract.outcome(result) for key, result in theirs.items()} == {
            row["key"]: row["flytekit"] for row in recorded["entries"] if "flytekit" in row
        }
