"""Scripts with inline metadata (PEP 723): ``ImageSpec.from_script`` takes the ``# /// script``
block's dependencies and requires-python; a bad block is a SpecError with the file, line and
column; a python_version that does not satisfy requires-python is refused before any build."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from imagespec import ImageSpec, ImageSpecError, SourceError, SpecError

HERE = f"{sys.version_info[0]}.{sys.version_info[1]}"

JOB = """\
#!/usr/bin/env python
# /// script
# requires-python = ">=3.9"
# dependencies = [
#   "pandas>=2",
#   "rich",
# ]
# ///

import pandas
"""


def script(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "job.py"
    path.write_text(text)
    return path


def test_the_dependencies_are_the_packages(tmp_path: Path) -> None:
    spec = ImageSpec.from_script(script(tmp_path, JOB), registry="localhost:5000")
    assert spec.packages == ["pandas>=2", "rich"]
    assert spec.python_version == HERE  # this interpreter's: it satisfies >=3.9
    # An ordinary spec: the same fields give the same image.
    same = ImageSpec(packages=["pandas>=2", "rich"], python_version=HERE, registry="localhost:5000")
    assert spec.image_name() == same.image_name()


def test_packages_given_come_after_the_scripts(tmp_path: Path) -> None:
    spec = ImageSpec.from_script(script(tmp_path, JOB), packages=["six"])
    assert spec.packages == ["pandas>=2", "rich", "six"]


def test_requires_python_chooses_the_version(tmp_path: Path) -> None:
    # One minor version that this interpreter is not (it holds under any Python 3.9-3.14).
    only = "3.10" if HERE == "3.9" else "3.9"
    path = script(tmp_path, JOB.replace(">=3.9", f"=={only}.*"))
    # This interpreter's does not satisfy it: the oldest that does.
    assert ImageSpec.from_script(path).python_version == only
    assert ImageSpec.from_script(path, python_version=only).python_version == only  # a given one is kept
    with pytest.raises(SpecError, match="does not satisfy"):
        ImageSpec.from_script(path, python_version="3.14")


def test_a_python_version_that_does_not_satisfy_requires_python_is_refused(tmp_path: Path) -> None:
    path = script(tmp_path, JOB.replace(">=3.9", ">=3.12"))
    with pytest.raises(SpecError, match=r"^python_version: 3\.10 does not satisfy requires-python") as e:
        ImageSpec.from_script(path, python_version="3.10")
    assert e.value.field == "python_version"
    assert str(path) in str(e.value)


@pytest.mark.parametrize(
    ("text", "line", "column", "words"),
    [
        ("import os\n", 1, 1, "no `# /// script` metadata block"),
        ("# /// script\n# dependencies = []\nimport os\n", 1, 1, "not closed"),
        ("# /// script\n# dependencies = [1]\n# ///\n", 2, 18, "dependencies"),
        ('# /// script\n# requires-python = ">=3.9"\n# dependency = ["a"]\n# ///\n', 3, 3, "dependency"),
        ("# /// script\n# ///\n\n# /// script\n# ///\n", 4, 1, "a second `# /// script` block"),
        ('# /// script\n# requires-python = "3.11+"\n# ///\n', 1, 1, "is not a version specifier"),
    ],
)
def test_a_bad_block_names_the_line_and_column(
    tmp_path: Path, text: str, line: int, column: int, words: str
) -> None:
    path = script(tmp_path, text)
    with pytest.raises(SpecError, match=words) as e:
        ImageSpec.from_script(path)
    assert (e.value.path, e.value.line, e.value.column) == (str(path), line, column)
    assert str(e.value).startswith(f"{path}:{line}:{column}: ")


def test_a_missing_or_binary_script(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="cannot be read") as e:
        ImageSpec.from_script(tmp_path / "absent.py")
    assert e.value.field == "script"
    binary = tmp_path / "blob.py"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ImageSpecError, match="not UTF-8"):
        ImageSpec.from_script(binary)


def test_a_float_python_version_is_read_as_the_constructor_reads_it(tmp_path: Path) -> None:
    path = script(tmp_path, JOB.replace(">=3.9", ">=3.10"))
    with pytest.warns(UserWarning, match="quote the version"):
        assert ImageSpec.from_script(path, python_version=3.1).python_version == "3.10"
