"""Tests against real engines (docker, buildah, podman, envd, native) and a real registry."""
