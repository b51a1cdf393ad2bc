"""`imagespec run --in-containers` ships a task's code as flytekit's fast registration does for
`pyflyte run --remote` (whose default is `--copy auto`, flytekit/clis/sdk_in_container/run.py:122):
the same files, laid out the same way, and importable first in the task's process and the
processes it starts. The file choice is compared with real flytekit (scripts/flytekit-venv.sh) on
the same loaded modules.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..flytekit_helpers import Flytekit

pytestmark = pytest.mark.timeout(1800)  # the flytekit venv and the wheel, cold

PROJECT = {
    "proj/wf.py": "import helpers\nimport outside\nfrom pkg import sub\nfrom pkg.inner import deep\n",
    "proj/helpers.py": "VALUE = 1\n",
    "proj/pkg/__init__.py": "",
    "proj/pkg/sub.py": "",
    "proj/pkg/unused.py": "raise RuntimeError('not imported')\n",
    "proj/pkg/inner/__init__.py": "",
    "proj/pkg/inner/deep.py": "",
    "proj/notes.txt": "data, not a module\n",
    "lib/outside.py": "",  # imported from another folder on sys.path: not the project's
}
LOADED = [
    "helpers.py",
    "pkg/__init__.py",
    "pkg/inner/__init__.py",
    "pkg/inner/deep.py",
    "pkg/sub.py",
    "wf.py",
]

# In flytekit's Python: what flytekit's fast registration ships, and what we ship, for one import
# of wf.py (as `pyflyte run wf.py ...` and `imagespec run wf.py ...` both import it).
COMPARE = textwrap.dedent(
    """
    import json, os, sys, tarfile, tempfile
    root = os.path.abspath("proj")
    sys.path[:0] = [root, os.path.abspath("lib")]
    import wf
    from flytekit.constants import CopyFileDetection
    from flytekit.tools.fast_registration import FastPackageOptions, fast_package
    from flytekit.tools.script_mode import _find_project_root, ls_files
    from imagespec._ship import CodeBundle, import_root, local_files

    options = FastPackageOptions([], copy_style=CopyFileDetection.LOADED_MODULES)
    archive = fast_package(root, tempfile.mkdtemp(), options=options)
    with tarfile.open(archive) as tar:
        flytekit_shipped = sorted(m.name for m in tar.getmembers() if m.isfile())
    flytekit_files, _ = ls_files(root, CopyFileDetection.LOADED_MODULES)
    our_root, rel = import_root("wf", wf.__file__)
    bundle = CodeBundle(our_root, local_files(our_root, sys.modules.values()))
    try:
        ours = bundle.files
    finally:
        bundle.close()
    print(json.dumps({
        "flytekit_shipped": flytekit_shipped,
        "flytekit_files": sorted(os.path.relpath(f, root) for f in flytekit_files),
        "flytekit_root": _find_project_root(wf.__file__),
        "ours": ours, "our_root": our_root, "rel": rel,
    }))
    """
)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    for rel, text in PROJECT.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    yield tmp_path


def test_the_shipped_files_are_the_ones_flytekits_fast_registration_ships(fk: Flytekit, tree: Path) -> None:
    # flytekit/tools/script_mode.py:116 (--copy auto): the files of the loaded modules under the
    # project root, minus installed code (script_mode.py:218, site-packages, the Python prefixes,
    # flytekit itself); fast_registration.py:175 puts each in the tarball at its path relative to
    # the root, which fast_execute_task_cmd unpacks into the working folder (entrypoint.py:773).
    out = json.loads(fk.run(COMPARE, tree).stdout.strip().splitlines()[-1])
    assert out["flytekit_files"] == LOADED
    assert out["flytekit_shipped"] == LOADED
    # Ours: the same files at the same relative paths (not pkg/unused.py, notes.txt, lib/outside.py,
    # flytekit or imagespec).
    assert out["ours"] == LOADED
    # The root: flytekit's is the first folder up from the file without an __init__.py
    # (script_mode.py:316); ours is the folder `import wf` finds it in, the same for a script.
    assert out["our_root"] == out["flytekit_root"] == str(tree / "proj")
    assert out["rel"] == "wf.py"


def test_the_shipped_folder_comes_first_for_the_task_and_the_processes_it_starts(tmp_path: Path) -> None:
    # flytekit/tools/fast_registration.py:317: the tarball is unpacked over the working folder
    # ("This will overwrite the existing user flyte workflow code"), so the shipped modules win
    # over the image's; entrypoint.py:792 puts the destination on PYTHONPATH for the task process.
    # Ours: execute puts IMAGESPEC_CODE_DIR first on sys.path and PYTHONPATH.
    image_root, code, io = tmp_path / "root", tmp_path / "code", tmp_path / "io"
    for folder, mark in ((image_root, "image"), (code, "shipped")):
        folder.mkdir()
        (folder / "helpers.py").write_text(f"MARK = {mark!r}\n")
    (code / "wf.py").write_text(
        textwrap.dedent(
            """
            import os, subprocess, sys
            import helpers
            from imagespec import task

            @task
            def where() -> dict:
                child = subprocess.run([sys.executable, "-c", "import helpers; print(helpers.MARK)"],
                                       capture_output=True, text=True, check=True, cwd="/")
                return {"wf": __file__, "helpers": helpers.MARK, "child": child.stdout.strip()}
            """
        )
    )
    io.mkdir()
    (io / "inputs.pkl").write_bytes(pickle.dumps({}))
    argv = [sys.executable, "-m", "imagespec.execute", "--module", "wf", "--task", "where"]
    argv += ["--inputs", str(io / "inputs.pkl"), "--output-prefix", str(io)]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(IMAGESPEC_CODE_DIR=str(code), PYTHONPATH=str(image_root))
    proc = subprocess.run(argv, cwd=image_root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    result = pickle.loads((io / "outputs.pkl").read_bytes())
    assert result == {"wf": str(code / "wf.py"), "helpers": "shipped", "child": "shipped"}

    # A code folder that is not there is an error naming it, not an import error further on.
    env["IMAGESPEC_CODE_DIR"] = str(tmp_path / "absent")
    proc = subprocess.run(argv, cwd=image_root, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert f"IMAGESPEC_CODE_DIR={tmp_path / 'absent'} is not a folder" in proc.stderr
