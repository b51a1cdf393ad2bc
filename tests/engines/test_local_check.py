"""Existence of images without a registry: the local Docker engine answers over its socket."""

from __future__ import annotations

import uuid

import pytest

from imagespec import ImageSpec, check

from .engine_helpers import DockerEngine


def test_a_spec_without_a_registry_exists_once_its_image_is_tagged(
    monkeypatch: pytest.MonkeyPatch, docker_engine: DockerEngine, python_base: str
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    docker_engine("pull", "-q", python_base)
    spec = ImageSpec(name="imagespec-local-check", python_version="3.11", packages=[uuid.uuid4().hex])
    (before,) = check([spec])
    assert before.status == "missing", before
    assert before.reason is not None and "local Docker engine" in before.reason
    docker_engine("tag", python_base, spec.image_name())
    docker_engine.created.add(spec.image_name())
    (after,) = check([spec])
    assert after.status == "exists", after
    assert after.reason is not None and "local Docker engine" in after.reason


def test_no_engine_answering_is_unknown_not_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    monkeypatch.setenv("PATH", "/nonexistent")  # no podman either
    (answer,) = check([ImageSpec(name="imagespec-local-check", python_version="3.11")])
    assert answer.status == "unknown"
    assert answer.reason is not None and "no local container engine answered" in answer.reason
