"""Build contexts from Python: the Dockerfile, the context's files, secrets, hostile values, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagespec import BuildError, ImageSpec, SpecError, _core, write_context
from imagespec._build import dockerfile, plan_context

from .conftest import write_tree
from .dockerfile_parser import flags_and_json, instructions, quoted_pairs, words

PEM = "-----BEGIN CERTIFICATE-----\nMIIBSECRETCERTBODY\n-----END CERTIFICATE-----\n"
PAYLOAD = 'x\nRUN touch /pwned\r\nRUN ["touch", "/pwned"] \\\n$(id) `id` \\ "\''


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imagespec", *args], cwd=cwd, capture_output=True, text=True, check=False
    )


def test_the_core_and_the_wrapper_agree() -> None:
    spec = ImageSpec(packages=["pandas"], python_version="3.11")
    assert dockerfile(spec, imagespec_wheel="index") == spec._core.dockerfile()
    assert plan_context(spec)["dockerfile_text"] == dockerfile(spec)
    assert words(dockerfile(spec)) == [
        "FROM", "USER", "RUN", "RUN", "ENV", "RUN", "WORKDIR", "USER", "LABEL", "ENV",
    ]  # fmt: skip


def test_image_id_and_labels() -> None:
    spec = ImageSpec(name="app", packages=["pandas"], python_version="3.11", registry="ghcr.io/acme")
    ins = instructions(dockerfile(spec, engine="buildah"))
    assert dict(quoted_pairs(ins[-1][1])) == {"PYTHONPATH": "/root", "_F_IMG_ID": spec.id}
    labels = dict(quoted_pairs(next(rest for w, rest in ins if w == "LABEL")))
    assert labels["dev.imagespec.id"] == spec.id
    assert labels["dev.imagespec.tag"] == spec.tag
    assert labels["dev.imagespec.engine"] == "buildah"
    assert labels["dev.imagespec.recipe"] == str(_core.RECIPE_VERSION)
    shown = json.loads(labels["dev.imagespec.spec"])
    assert shown["name"] == "app" and shown["packages"] == ["pandas"]
    assert "registry" not in shown  # where it is pushed is not what it contains


@pytest.mark.parametrize("buildkit", [True, False])
def test_hostile_values_add_no_instruction(buildkit: bool) -> None:
    spec = ImageSpec(
        python_version="3.11",
        commands=[PAYLOAD, "echo hi\nRUN touch /pwned"],
        entrypoint=[PAYLOAD],
        env={"A": 'x $(id) `id` " \\ $HOME ${HOME} end\\'},
    )
    text = dockerfile(spec, buildkit=buildkit)
    assert words(text) == [
        "FROM", "USER", "RUN", "RUN", "ENV", "RUN", "RUN", "RUN", "ENV", "WORKDIR", "USER", "ENTRYPOINT",
        "LABEL", "ENV",
    ]  # fmt: skip
    ins = instructions(text)
    assert flags_and_json(ins[6][1])[1] == ["/bin/sh", "-c", PAYLOAD]
    assert flags_and_json(ins[7][1])[1] == ["/bin/sh", "-c", "echo hi\nRUN touch /pwned"]
    assert flags_and_json(ins[11][1])[1] == [PAYLOAD]
    assert dict(quoted_pairs(ins[8][1])) == {"A": spec.env["A"]}  # type: ignore[index]
    assert not any(line.startswith("RUN touch") for line in text.splitlines())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("packages", "pandas; rm -rf /"),
        ("packages", "$(id)"),
        ("packages", "`id`"),
        ("packages", "pandas==1.0 && touch /pwned"),
        ("packages", "--index-url=https://evil.example.com"),
        ("runtime_packages", "rich; os_name == '$(id)'"),
        ("conda_packages", "numpy;id"),
        ("apt_packages", "git=$(id)"),
    ],
)
def test_hostile_package_values_are_refused(field: str, value: str) -> None:
    try:
        spec = ImageSpec(python_version="3.11", **{field: [value]})
    except SpecError:
        return  # refused at construction
    with pytest.raises(SpecError) as e:
        dockerfile(spec)
    assert e.value.field == f"{field}[0]"


def test_env_values_with_line_breaks_are_refused() -> None:
    spec = ImageSpec(python_version="3.11", env={"A": "x\nRUN touch /pwned"})
    with pytest.raises(SpecError, match="line break"):
        dockerfile(spec)


def test_cuda_without_a_base_image_is_refused() -> None:
    with pytest.raises(SpecError, match="CUDA base image") as e:
        dockerfile(ImageSpec(python_version="3.11", cuda="12.1"))
    assert e.value.field == "cuda"


def test_secrets_reach_no_dockerfile_and_no_context_file(tmp_path: Path) -> None:
    write_tree(
        tmp_path / "proj",
        {
            "app.py": "print('hi')\n",
            "netrc": "machine pypi.example.com login me password NETRCSECRET\n",
            ".dockerignore": "netrc\n",
        },
    )
    write_tree(tmp_path / "certs", {"a.pem": PEM, "readme.txt": "not a cert"})
    proj = tmp_path / "proj"
    spec = ImageSpec(
        python_version="3.11",
        source_root=proj,
        source_copy_mode="ALL",
        packages=["rich"],
        pip_index="https://me:URLSECRET@pypi.example.com/simple",
        pip_extra_args="--extra-index-url https://tok:ARGSECRET@more.example.com/simple --pre",
        pip_secret_mounts=[(str(proj / "netrc"), "/root/.netrc")],
    )
    for ca in (PEM, tmp_path / "certs", tmp_path / "certs" / "a.pem"):
        out = tmp_path / f"ctx-{len(list(tmp_path.iterdir()))}"
        built = write_context(spec, out, ca_bundle=ca)
        assert built.files == ("Dockerfile", "source/.dockerignore", "source/app.py")
        blob = b"".join((built.context / f).read_bytes() for f in built.files)
        for secret in (b"URLSECRET", b"ARGSECRET", b"NETRCSECRET", b"MIIBSECRETCERTBODY"):
            assert secret not in blob
        assert [s.id for s in built.secrets] == [
            "imagespec_ca",
            "imagespec_pip_conf",
            "imagespec_pip_args",
            "imagespec_secret_0",
        ]
        paths = {s.id: s.path for s in built.secrets}
        assert b"MIIBSECRETCERTBODY" in paths["imagespec_ca"].read_bytes()
        assert b"URLSECRET" in paths["imagespec_pip_conf"].read_bytes()
        assert paths["imagespec_pip_args"].read_text().splitlines() == [
            "--extra-index-url",
            "https://tok:ARGSECRET@more.example.com/simple",
            "--pre",
        ]
        assert paths["imagespec_secret_0"] == proj / "netrc"
        for s in built.secrets:
            assert built.context not in s.path.parents


def test_secrets_are_refused_without_buildkit() -> None:
    spec = ImageSpec(python_version="3.11", pip_index="https://me:pw@pypi.example.com/simple")
    with pytest.raises(BuildError, match="BuildKit"):
        dockerfile(spec, buildkit=False)
    with pytest.raises(BuildError, match="BuildKit"):
        dockerfile(ImageSpec(python_version="3.11"), buildkit=False, ca_bundle=PEM)


def test_a_ca_bundle_must_hold_a_certificate(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "x.pem").write_text("nothing")
    spec = ImageSpec(python_version="3.11")
    for ca in (tmp_path / "empty", tmp_path / "x.pem", tmp_path / "missing.pem"):
        with pytest.raises(BuildError, match="ca_bundle"):
            write_context(spec, tmp_path / f"out-{ca.name}", ca_bundle=ca)


def test_the_context_is_the_tagged_selection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_tree(
        tmp_path,
        {
            "wf.py": "import helper\n",
            "helper.py": "X = 1\n",
            "unused.py": "Y = 2\n",
            "data/conf.yaml": "a: 1\n",
            "uvproj/uv.lock": "version = 1\n",
            "uvproj/pyproject.toml": "[project]\nname = 'p'\n",
        },
    )
    spec = ImageSpec(
        python_version="3.11",
        source_root=tmp_path,
        source_copy_mode="ALL",
        copy=["data"],
        requirements=tmp_path / "uvproj" / "uv.lock",
    )
    built = write_context(spec)
    try:
        assert built.files == (
            "Dockerfile",
            "copy/data/conf.yaml",
            "imagespec/requirements/pyproject.toml",
            "imagespec/requirements/uv.lock",
            "source/data/conf.yaml",
            "source/helper.py",
            "source/unused.py",
            "source/uvproj/pyproject.toml",
            "source/uvproj/uv.lock",
            "source/wf.py",
        )
        keys = sorted(spec.tag_inputs()["files"])
        assert len(keys) == len(built.files) - 1
        assert built.tag == spec.tag and built.id == spec.id and built.image == spec.image_name()
        assert (built.context / "source/helper.py").read_text() == "X = 1\n"
        assert built.dockerfile.read_text() == built.dockerfile_text == dockerfile(spec)
    finally:
        import shutil

        shutil.rmtree(built.dir)


def test_loaded_modules_select_the_imported_files(tmp_path: Path) -> None:
    write_tree(tmp_path, {"wf.py": "import helper\n", "helper.py": "X = 1\n", "unused.py": "Y = 2\n"})
    code = (
        "import sys, json\n"
        "sys.path.insert(0, '.')\n"
        "import wf\n"
        "from imagespec import ImageSpec\n"
        "from imagespec._build import plan_context\n"
        "spec = ImageSpec(python_version='3.11', source_root='.', source_copy_mode='LOADED_MODULES')\n"
        "print(json.dumps(plan_context(spec)['files']))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout) == ["Dockerfile", "source/helper.py", "source/wf.py"]


def test_build_dry_run_prints_dockerfiles_and_files(tmp_path: Path) -> None:
    write_tree(
        tmp_path,
        {
            "wf.py": (
                "from imagespec import ImageSpec\n"
                "base = ImageSpec(name='base', registry='ghcr.io/acme', python_version='3.11',\n"
                "                 packages=['numpy'])\n"
                "app = ImageSpec(name='app', registry='ghcr.io/acme', base_image=base, source_root='src',\n"
                "                source_copy_mode='ALL')\n"
            ),
            "src/main.py": "print('hi')\n",
        },
    )
    out = cli("build", "--dry-run", "wf.py", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.index("==> base: ghcr.io/acme/base:") < out.stdout.index("==> app: ghcr.io/acme/app:")
    assert out.stdout.count("--- Dockerfile") == 2
    assert "source/main.py" in out.stdout
    rows = json.loads(cli("build", "--dry-run", "--json", "wf.py", cwd=tmp_path).stdout)
    assert [r["name"] for r in rows] == ["base", "app"]
    assert rows[1]["files"] == ["Dockerfile", "source/main.py"]
    assert rows[1]["dockerfile_text"].splitlines()[1] == f"FROM {rows[0]['image']}"


def test_build_dry_run_with_a_ca_bundle_lists_the_secret(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text(PEM)
    (tmp_path / "image.yaml").write_text("python_version: '3.11'\npackages: [rich]\n")
    out = cli("build", "--dry-run", "--ca-bundle", "ca.pem", "image.yaml", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "--- build secrets\nimagespec_ca" in out.stdout
    assert "MIIBSECRETCERTBODY" not in out.stdout


def test_build_fails_closed_when_the_registry_cannot_be_asked(tmp_path: Path) -> None:
    # Port 1 on loopback refuses connections: existence is unknown, so nothing may be built blind.
    (tmp_path / "image.yaml").write_text("python_version: '3.11'\nregistry: localhost:1\n")
    out = cli("build", "image.yaml", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "cannot tell whether it exists" in out.stdout
    assert "refused" in out.stderr
    assert "building localhost" not in out.stderr and "Traceback" not in out.stderr


def test_build_with_an_unknown_builder_lists_the_registered_ones(tmp_path: Path) -> None:
    (tmp_path / "image.yaml").write_text("python_version: '3.11'\nregistry: localhost:1\n")
    out = cli("build", "--builder", "nosuch", "image.yaml", cwd=tmp_path)
    assert out.returncode == 1
    assert "'nosuch' is not registered" in out.stderr and "docker" in out.stderr


def test_build_dry_run_errors_exit_1(tmp_path: Path) -> None:
    (tmp_path / "image.yaml").write_text("python_version: '3.11'\ncuda: '12.1'\n")
    out = cli("build", "--dry-run", "image.yaml", cwd=tmp_path)
    assert out.returncode == 1
    assert "cuda" in out.stderr and "Traceback" not in out.stderr
