"""A spec's check options (platforms, registry_config, insecure registries) are read by one rule, the
core's, for the plan's checks and for `spec.exist()` / `imagespec.check` / `imagespec exists` alike."""

from __future__ import annotations

import pytest

from imagespec import ImageSpec, check

from .registry_servers import FaultProxy, Registry
from .test_check import non_loopback_address, push_for


def test_a_comma_separated_insecure_registries_string_is_split_as_the_builders_split_it(
    open_registry: Registry,
) -> None:
    # docs/engines.md: builder_options insecure_registries is a list or a comma-separated string.
    # The builders split it; the existence check used to keep "a:1,b:2" as one registry name, so
    # spec.exist() refused plain HTTP to b:2 while the build allowed it.
    addr = non_loopback_address()
    if addr is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    proxy = FaultProxy(open_registry.host, bind=addr)
    try:
        spec = ImageSpec(
            name="app", registry=proxy.host, builder_options={"insecure_registries": f"other:1, {proxy.host}"}
        )
        push_for(spec, open_registry.host)
        assert spec._core.check_options == (["linux/amd64"], None, ["other:1", proxy.host])
        assert spec.exist() is True
        [status] = check([spec], timeout=5)
        assert status.status == "exists", status.reason
    finally:
        proxy.stop()


def test_check_takes_references_and_imagespecs_only() -> None:
    class Other:
        def image_name(self) -> str:
            return "localhost:5000/x:y"

    with pytest.raises(TypeError, match="from_flytekit"):
        check([Other()])  # type: ignore[list-item]
