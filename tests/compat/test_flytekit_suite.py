"""flytekit's own ImageSpec tests (v1.16.24, vendored in flytekit_suite/) on imagespec.

A flytekit user switches by changing import lines only, so flytekit's tests, with only their
import lines changed, must pass on imagespec: each vendored test is one test here. The same files,
with those lines turned back, run on flytekit itself first, which shows the vendored suite is the
real one (every test passes there but test_nested_build, which flytekit skips too).

Both runs are pytest in the flytekit venv (scripts/flytekit-venv.sh): flytekit's tests import
flytekit for their fixtures and contexts. The imagespec run has this checkout's wheel on its path;
the flytekit run has no imagespec at all.
"""

from __future__ import annotations

import shutil
import textwrap
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..flytekit_helpers import Flytekit

pytestmark = pytest.mark.timeout(1800)  # the session fixture may make the venv and the wheel cold

# The changed lines of each vendored file, as (imagespec's line, flytekit's line); the files'
# headers list the same with the original line numbers.
CHANGED: dict[str, list[tuple[str, str]]] = {
    "conftest.py": [
        (
            "from imagespec.image_spec.image_spec import ImageSpecBuilder",
            "from flytekit.image_spec.image_spec import ImageSpecBuilder",
        ),
    ],
    "test_image_spec.py": [
        (
            "from imagespec.constants import CopyFileDetection",
            "from flytekit.constants import CopyFileDetection",
        ),
        ("from imagespec.image_spec import ImageSpec", "from flytekit.image_spec import ImageSpec"),
        (
            "from imagespec.image_spec.image_spec import _F_IMG_ID, ImageBuildEngine",
            "from flytekit.image_spec.image_spec import _F_IMG_ID, ImageBuildEngine",
        ),
        (
            "from imagespec.image_spec.noop_builder import NoOpBuilder",
            "from flytekit.image_spec.noop_builder import NoOpBuilder",
        ),
    ],
    "test_noop_builder.py": [
        (
            "from imagespec.image_spec.noop_builder import NoOpBuilder",
            "from flytekit.image_spec.noop_builder import NoOpBuilder",
        ),
        ("from imagespec import ImageSpec", "from flytekit import ImageSpec"),
    ],
}

_LIST_FIELDS = ("packages", "conda_channels", "conda_packages", "apt_packages", "pip_extra_index_url")
# Every test of the vendored files, as pytest names them (file::test[params]).
TESTS = [
    f"test_image_spec.py::{name}"
    for name in [
        "test_image_spec",
        "test_nested_build",
        "test_image_spec_engine_priority",
        "test_build_existing_image_with_force_push",
        "test_custom_tag",
        *(
            f"test_image_spec_validation_string_list[{value}-{field}]"
            for value in ("requirements.txt", "value1")
            for field in (*_LIST_FIELDS, "entrypoint", "commands")
        ),
        "test_image_spec_validation_two_string_tuple_list[secrets.txt-pip_secret_mounts]",
        "test_image_spec_validation_two_string_tuple_list[value1-pip_secret_mounts]",
        "test_copy_is_set_if_source_root_is_set",
        "test_registry_name",
        "test_image_spec_from_env_error",
        "test_image_spec_from_env_with_pinned_packages",
        "test_image_spec_from_env_empty",
        "test_image_spec_same_id_and_tag_with_pip_secret_mounts",
        "test_image_spec_same_id_and_tag_with_builder",
        "test_dev_packages",
        "test_invalid_builder_options",
        "test_with_builder_options",
        "test_noop_builder_updates_image_name_mapping",
    ]
] + [
    f"test_noop_builder.py::{name}"
    for name in [
        "test_noop_builder",
        "test_noop_builder_error[None]",
        "test_noop_builder_error[base_image1]",
        "test_noop_builder_should_build",
    ]
]
# Skipped by flytekit itself unless _FLYTEKIT_TEST_IMAGE_BUILD_ENGINE=1 (it builds torch).
SKIPPED = {"test_image_spec.py::test_nested_build"}


@dataclass(frozen=True)
class Outcome:
    kind: str  # passed, failed, error or skipped
    message: str


@dataclass(frozen=True)
class Run:
    outcomes: dict[str, Outcome]
    output: str

    def check(self, test: str) -> None:
        assert test in self.outcomes, f"{test} did not run; pytest said:\n{self.output[-3000:]}"
        got = self.outcomes[test]
        want = "skipped" if test in SKIPPED else "passed"
        assert got.kind == want, f"{test}: {got.kind}\n{got.message}"


def flytekit_copy(src: Path, dst: Path) -> None:
    """The vendored files with their changed lines turned back: flytekit's tests as they are."""
    shutil.copytree(src, dst)
    for name, pairs in CHANGED.items():
        path = dst / name
        lines = path.read_text().split("\n")
        for ours, theirs in pairs:
            at = [i for i, line in enumerate(lines) if line.strip() == ours]
            assert len(at) == 1, f"{name}: {ours!r} is on {len(at)} lines, not 1 (update CHANGED)"
            line = lines[at[0]]
            lines[at[0]] = line[: len(line) - len(line.lstrip())] + theirs
        code = [line for line in lines if not line.lstrip().startswith("#")]
        assert not [line for line in code if "imagespec" in line], f"{name} still names imagespec"
        path.write_text("\n".join(lines))


def run_suite(fk: Flytekit, folder: Path, with_imagespec: bool) -> Run:
    # The folder is pytest's root (an empty ini): none of this repository's pytest settings apply.
    (folder / "pytest.ini").write_text("[pytest]\n")
    xml = folder / "junit.xml"
    code = textwrap.dedent(
        f"""
        import sys, pytest
        sys.exit(pytest.main(["-p", "no:cacheprovider", "-q", "--junitxml", {str(xml)!r}, {str(folder)!r}]))
        """
    )
    env = None if with_imagespec else {"PYTHONPATH": str(folder)}
    proc = fk.run(code, cwd=folder, env=env, check=False)
    output = proc.stdout + proc.stderr
    assert xml.exists(), f"pytest wrote no report ({proc.returncode}):\n{output[-4000:]}"
    outcomes: dict[str, Outcome] = {}
    for case in ET.parse(xml).iter("testcase"):
        test = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
        kind, message = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                kind = "failed" if child.tag == "failure" else child.tag
                message = f"{child.get('message', '')}\n{(child.text or '')[-2500:]}"
        outcomes[test] = Outcome(kind, message)
    return Run(outcomes, output)


@pytest.fixture(scope="module")
def on_flytekit(fk: Flytekit, suite_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("suite-flytekit") / "image_spec"
    flytekit_copy(suite_dir, folder)
    return run_suite(fk, folder, with_imagespec=False)


@pytest.fixture(scope="module")
def on_imagespec(fk: Flytekit, suite_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = tmp_path_factory.mktemp("suite-imagespec") / "image_spec"
    shutil.copytree(suite_dir, folder)
    return run_suite(fk, folder, with_imagespec=True)


def test_the_suite_is_flytekits_own(on_flytekit: Run) -> None:
    """Turned back, the vendored files are flytekit's tests: all of them run, and pass, on flytekit."""
    assert sorted(on_flytekit.outcomes) == sorted(TESTS)
    for test in TESTS:
        on_flytekit.check(test)


@pytest.mark.parametrize("test", TESTS)
def test_on_imagespec(on_imagespec: Run, test: str) -> None:
    on_imagespec.check(test)


def test_only_import_lines_differ(suite_dir: Path, tmp_path: Path) -> None:
    """Every changed line is an import of an ImageSpec name, and nothing else differs."""
    flytekit_copy(suite_dir, tmp_path / "fk")
    for name in CHANGED:
        ours = (suite_dir / name).read_text().split("\n")
        theirs = (tmp_path / "fk" / name).read_text().split("\n")
        differ = [(a, b) for a, b in zip(ours, theirs) if a != b]
        assert len(ours) == len(theirs) and len(differ) == len(CHANGED[name])
        for a, b in differ:
            assert a.lstrip().startswith(("from imagespec", "import imagespec")), a
            assert b.lstrip().startswith(("from flytekit", "import flytekit")), b
