"""The seed's workflow (examples/wf.py) with each task in its own real image: the images are built
with the docker engine FROM the debootstrap base, pushed to a loopback registry, and every task call
runs in its image by its template's command (`imagespec run ... --in-containers`).

The host runs the workflow's body and unpickles the tasks' outputs, so it needs pandas and
scikit-learn too (scripts/setup.sh installs them into .venv).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from ..registry.registry_servers import Registry
from .engine_helpers import MACHINE_CA, ROOT, DockerEngine, missing, run

WF = ROOT / "examples" / "wf.py"

IS_CONTAINER = (
    "import json, wf; "
    "print(json.dumps([wf.pandas_image_spec.is_container(), wf.sklearn_image_spec.is_container()]))"
)


def test_the_example_runs_each_task_in_its_own_image(
    docker_engine: DockerEngine, loopback_registry: Registry, python_base: str, imagespec_wheel: Path
) -> None:
    for module in ("pandas", "sklearn"):  # the workflow body runs on the host too
        if importlib.util.find_spec(module) is None:
            missing(f"{module} is not installed in this Python (make setup installs it)")
    if not MACHINE_CA.is_file():
        pytest.fail(f"no machine CA bundle at {MACHINE_CA}")
    env = docker_engine.env(
        EXAMPLE_REGISTRY=loopback_registry.host,
        EXAMPLE_BASE_IMAGE=python_base,
        IMAGESPEC_WHEEL=str(imagespec_wheel),
        IMAGESPEC_CA_BUNDLE=str(MACHINE_CA),
    )
    imagespec = [sys.executable, "-m", "imagespec"]

    done = run([*imagespec, "run", str(WF), "wf", "--in-containers"], env=env, timeout=1800)
    assert done.stdout.strip() == "LogisticRegression(max_iter=3000)", done.stderr
    host = loopback_registry.host
    ran = [line.split()[1:4:2] for line in done.stderr.splitlines() if line.startswith("running ")]
    assert [(task, image.split("@")[0].rsplit(":", 1)[0]) for task, image in ran] == [
        ("wf.get_pandas_dataframe", f"{host}/wf-pandas"),
        ("wf.get_model", f"{host}/wf-sklearn"),
        ("wf.train_model", f"{host}/wf-sklearn"),
    ], done.stderr

    # Every image exists now; the templates name the images the run used.
    listed = run([*imagespec, "build", str(WF), "wf", "--json"], env=env, timeout=600)
    rows = json.loads(listed.stdout)
    assert [r["outcome"] for r in rows] == ["exists", "exists"], listed.stdout
    templates = {t["name"]: t for r in rows for t in r["tasks"]}
    assert sorted(templates) == ["wf.get_model", "wf.get_pandas_dataframe", "wf.train_model"]
    for task, image in ran:
        assert templates[task]["image"].split("@")[0] == image.split("@")[0]  # exists: pinned by digest
        expected = ["python", "-m", "imagespec.execute", "--module", "wf", "--task", task[3:]]
        assert templates[task]["command"][:7] == expected
    assert templates["wf.get_model"]["resources"]["requests"] == {"cpu": "1", "mem": "1Gi"}

    # is_container() as on a cluster: each image knows itself, and only itself.
    pandas_image, sklearn_image = (templates[t]["image"] for t in ("wf.get_pandas_dataframe", "wf.get_model"))
    docker_engine.created.update({pandas_image, sklearn_image})
    inside = {
        image: json.loads(docker_engine("run", "--rm", image, "python", "-c", IS_CONTAINER))
        for image in (pandas_image, sklearn_image)
    }
    assert inside == {pandas_image: [True, False], sklearn_image: [False, True]}
