"""Credentials in the URLs of `packages` and `runtime_packages` (`pkg @ git+https://oauth2:TOKEN@...`)
stay out of everything imagespec shows, hashes or writes into an image (docs/security.md, items 3
and 8g): the tag, the id, the `dev.imagespec.spec` label, `repr`, `to_yaml`, error messages and
the Dockerfile text. They reach the pip step as the BuildKit secret `imagespec_pip_reqs` only; an
engine without BuildKit refuses them, and a requirements file holding credentials, which it would
copy into a layer.

Each test reads the token where it leaked before the fix. Real builds with an index that checks
the token: tests/engines/test_build_credentials.py.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from imagespec import BuildError, ImageSpec, SpecError, write_context
from imagespec._build import dockerfile

from . import scheme_reference as ref
from .dockerfile_parser import flags_and_json, instructions, quoted_pairs

TOKEN = "glpat-Tok3nThatMustNotLeak"
PRIVATE = f"private-lib @ git+https://oauth2:{TOKEN}@gitlab.example.com/team/private-lib.git@v1.2"
WHEEL = f"tool @ https://{TOKEN}@files.example.com/tool-1.0-py3-none-any.whl"


def spec_with(token: str = TOKEN, **extra: object) -> ImageSpec:
    return ImageSpec(
        python_version="3.11",
        packages=["rich", PRIVATE.replace(TOKEN, token)],
        runtime_packages=[WHEEL.replace(TOKEN, token)],
        **extra,  # type: ignore[arg-type]
    )


def test_the_tag_and_id_do_not_hold_or_follow_the_token() -> None:
    spec = spec_with()
    rotated = spec_with("glpat-AnotherToken")
    without = ImageSpec(
        python_version="3.11",
        packages=["rich", PRIVATE.replace(f"oauth2:{TOKEN}@", "")],
        runtime_packages=[WHEEL.replace(f"{TOKEN}@", "")],
    )
    assert spec.tag == rotated.tag == without.tag
    assert spec.id == rotated.id == without.id
    assert TOKEN not in json.dumps(spec.tag_inputs(), default=str)
    # As docs/tag-scheme.md says: each entry with every URL's userinfo removed.
    stripped = [ref.strip_credentials(p) for p in spec.packages or []]
    assert stripped[1] == "private-lib @ git+https://gitlab.example.com/team/private-lib.git@v1.2"
    assert spec.tag_inputs()["fields"]["packages"] == ref.H(["packages", stripped]).hex()


def test_repr_and_yaml_show_no_token(tmp_path: Path) -> None:
    spec = spec_with()
    assert TOKEN not in repr(spec)
    assert "oauth2:***@gitlab.example.com" not in repr(spec)  # the whole userinfo is hidden
    assert "https://***@gitlab.example.com/team/private-lib.git@v1.2" in repr(spec)
    text = spec.to_yaml(tmp_path / "image.yaml")
    assert TOKEN not in text and TOKEN not in (tmp_path / "image.yaml").read_text()
    # The spec itself keeps them: the install needs them.
    assert spec.packages is not None and PRIVATE in spec.packages


def test_a_spec_read_back_from_redacted_yaml_says_the_credentials_are_missing(tmp_path: Path) -> None:
    spec_with().to_yaml(tmp_path / "image.yaml")
    loaded = ImageSpec.from_yaml(tmp_path / "image.yaml")
    assert loaded.tag == spec_with().tag
    with pytest.raises(SpecError, match=r"packages\[1\]: has a URL whose credentials were left out") as e:
        dockerfile(loaded)
    assert "pip_secret_mounts" in str(e.value)


def test_the_dockerfile_and_the_context_hold_no_token(tmp_path: Path) -> None:
    spec = spec_with()
    built = write_context(spec, tmp_path / "ctx")
    assert TOKEN not in built.dockerfile_text
    for f in built.files:
        assert TOKEN.encode() not in (built.context / f).read_bytes(), f
    (pip_step,) = [
        rest for word, rest in instructions(built.dockerfile_text) if word == "RUN" and "pip install" in rest
    ]
    flags, argv = flags_and_json(pip_step)
    assert "rich" in argv
    assert not any("private-lib" in a or "tool" in a for a in argv[4:])
    assert "--mount=type=secret,id=imagespec_pip_reqs,target=/run/secrets/imagespec_pip_reqs" in flags
    # The label shows what is installed from where, without who may download it.
    (label,) = [rest for word, rest in instructions(built.dockerfile_text) if word == "LABEL"]
    shown = json.loads(dict(quoted_pairs(label))["dev.imagespec.spec"])
    assert shown["packages"] == [
        "rich",
        "private-lib @ git+https://gitlab.example.com/team/private-lib.git@v1.2",
    ]
    assert shown["runtime_packages"] == ["tool @ https://files.example.com/tool-1.0-py3-none-any.whl"]


def test_the_packages_reach_the_install_as_a_private_secret_file(tmp_path: Path) -> None:
    built = write_context(spec_with(), tmp_path / "ctx")
    secrets = {s.id: s.path for s in built.secrets}
    path = secrets["imagespec_pip_reqs"]
    assert path.read_text().splitlines() == [PRIVATE, WHEEL]
    assert built.context not in path.parents
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_engine_without_buildkit_refuses_them() -> None:
    with pytest.raises(BuildError, match=r"packages or runtime_packages with credentials.*BuildKit") as e:
        dockerfile(spec_with(), buildkit=False)
    assert TOKEN not in str(e.value)
    # Without credentials the same spec builds there.
    plain = ImageSpec(python_version="3.11", packages=["rich"])
    assert "pip install" in dockerfile(plain, buildkit=False)


def test_a_requirements_file_with_credentials_is_refused_without_buildkit(tmp_path: Path) -> None:
    """Without BuildKit the file is COPY'd into a layer, where `rm` later cannot take it out."""
    (tmp_path / "requirements.txt").write_text(
        f"--extra-index-url https://me:{TOKEN}@pkgs.example.com\nrich\n"
    )
    spec = ImageSpec(python_version="3.11", requirements=str(tmp_path / "requirements.txt"))
    with pytest.raises(BuildError, match=r"requirements\.txt holds a URL with credentials") as e:
        dockerfile(spec, buildkit=False)
    assert TOKEN not in str(e.value)
    # With BuildKit the file is only bind-mounted for the install step.
    text = dockerfile(spec)
    assert "--mount=type=bind,source=imagespec" in text and 'COPY ["imagespec/"' not in text
    (tmp_path / "requirements.txt").write_text("rich\n")
    assert 'COPY ["imagespec/"' in dockerfile(spec, buildkit=False)


@pytest.mark.parametrize(
    "package",
    [
        f"bad name @ https://u:{TOKEN}@h.example.com/x.whl",
        f"-e git+https://u:{TOKEN}@h.example.com/x.git",
        f"imagespec @ https://u:{TOKEN}@h.example.com/imagespec-1.0-py3-none-any.whl",
    ],
)
def test_error_messages_hide_the_token(package: str) -> None:
    spec = ImageSpec(python_version="3.11", packages=[package])
    with pytest.raises(SpecError) as e:
        dockerfile(spec)
    assert TOKEN not in str(e.value) and "packages[0]" in str(e.value)


def test_a_line_break_message_hides_the_token() -> None:
    with pytest.raises(SpecError) as e:
        ImageSpec(python_version="3.11", pip_extra_args=f"--index-url https://u:{TOKEN}@h\n--pre").tag  # noqa: B018
    assert TOKEN not in str(e.value)
