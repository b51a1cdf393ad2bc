"""Properties of ids and tags (docs/tag-scheme.md), checked on generated specs and file trees.

Several properties also compare imagespec with the independent reference implementation in
`scheme_reference.py` on the generated inputs (random maps, lists and trees).

The example counts keep the whole module under 30 s; `IMAGESPEC_PROPERTY_SCALE=20` multiplies them
for a deeper run.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import string
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from imagespec import CopyFileDetection, ImageSpec, SpecError

from . import scheme_reference as ref

SCALE = int(os.environ.get("IMAGESPEC_PROPERTY_SCALE", "1"))
HOST_ARCH = platform.machine()


def examples(n: int) -> int:
    return n * SCALE


def fixture_settings(n: int) -> settings:
    """Settings of the properties that work on files.

    The autouse `clean_env` fixture is function-scoped, so it runs once for all the examples of a
    test: that is wanted here. It only removes the caller's image id and force-push flags and points
    the digest cache at a fresh folder; no property sets those variables, every example works in
    its own temporary folders (tempfile, not the function-scoped `tmp_path`), and a digest cache
    shared by the examples makes the properties stricter (a stale cached digest would fail them).
    No health check needs suppressing: no test takes a function-scoped fixture as an argument.
    """
    return settings(max_examples=examples(n), deadline=None)


# ---------------------------------------------------------------------------------------------
# Strategies

# Any text without NUL (the only character the core refuses in free-form strings) and without lone
# surrogates (not UTF-8 encodable: Python cannot pass them to the core).
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# One-line, non-blank values (packages, channels, ...): the core refuses empty and multi-line ones.
LINE = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00" + LINE_BREAKS),
    min_size=1,
    max_size=12,
).filter(lambda s: s.strip() != "")
NAME = st.from_regex(r"[a-z0-9]{1,6}(-[a-z0-9]{1,6}){0,2}", fullmatch=True)
ENV_KEY = st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True)
PYTHON = st.sampled_from(["3.9", "3.10", "3.11", "3.12", "3.13", "3.11.4"])
REGISTRY = st.from_regex(
    r"[a-z0-9]{1,8}(\.[a-z0-9]{1,5}){1,2}(:[1-9][0-9]{1,3})?(/[a-z0-9]{1,6}){0,2}", fullmatch=True
)
IMAGE_REF = st.from_regex(r"[a-z0-9]{1,8}(/[a-z0-9]{1,8})?(:[a-z0-9][a-z0-9._-]{0,8})?", fullmatch=True)
PLATFORMS = st.lists(
    st.sampled_from(["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/ppc64le"]), min_size=1, max_size=4
).map(",".join)
CREDENTIALS = st.from_regex(r"([A-Za-z0-9]{1,6}(:[A-Za-z0-9]{1,6})?@)?", fullmatch=True)
URL = st.builds(
    lambda creds, host, path: f"https://{creds}{host}/{path}",
    CREDENTIALS,
    st.from_regex(r"[a-z0-9]{1,8}\.[a-z]{2,4}", fullmatch=True),
    st.from_regex(r"[a-z0-9]{0,6}(/[a-z0-9]{1,6}){0,2}", fullmatch=True),
)
PATH_SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/" + LINE_BREAKS),
    min_size=1,
    max_size=8,
).filter(lambda s: s.strip() not in ("", ".", ".."))
ABS_PATH = st.lists(PATH_SEGMENT, min_size=1, max_size=3).map(lambda parts: "/" + "/".join(parts))
REL_PATH = st.lists(
    st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,6}", fullmatch=True).filter(lambda s: s not in (".", "..")),
    min_size=1,
    max_size=3,
).map("/".join)
TAG_FORMAT = st.builds(
    lambda pre, post: f"{pre}{{spec_hash}}{post}",
    st.from_regex(r"([A-Za-z0-9_][A-Za-z0-9_.-]{0,10})?", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.-]{0,10}", fullmatch=True),
)
VERSION = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,2}){0,2}", fullmatch=True)
SCALAR = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
JSON_MAP = st.dictionaries(TEXT, JSON, max_size=5)


@st.composite
def spec_fields(draw: st.DrawFn, nested: bool = False) -> dict[str, Any]:
    """The constructor fields of a random valid spec (every field may appear)."""
    f: dict[str, Any] = {}

    def maybe(key: str, strategy: st.SearchStrategy[Any]) -> None:
        if draw(st.booleans()):
            f[key] = draw(strategy)

    maybe("name", NAME)
    maybe("builder", st.sampled_from(["docker", "buildah", "default"]))
    maybe("source_root", ABS_PATH)
    maybe("source_copy_mode", st.sampled_from([*CopyFileDetection, "ALL", "NO_COPY", "LOADED_MODULES"]))
    maybe("env", st.dictionaries(ENV_KEY, TEXT, max_size=4))
    maybe("registry", REGISTRY)
    for key in ("packages", "conda_packages", "conda_channels", "runtime_packages"):
        maybe(key, st.lists(LINE, max_size=3))
    maybe(
        "requirements",
        st.builds(lambda d, n: f"{d}/{n}", ABS_PATH, st.sampled_from(["requirements.txt", "uv.lock"])),
    )
    maybe("apt_packages", st.lists(st.from_regex(r"[a-z0-9][a-z0-9+.-]{1,8}", fullmatch=True), max_size=3))
    maybe("cuda", VERSION)
    maybe("cudnn", VERSION)
    maybe("base_image", IMAGE_REF if nested else st.one_of(IMAGE_REF, spec_fields(nested=True)))
    # python_version is always explicit unless a base image is given (the default is this interpreter's)
    if "base_image" not in f or draw(st.booleans()):
        f["python_version"] = draw(PYTHON)
    maybe("platform", PLATFORMS)
    maybe("pip_index", URL)
    maybe("pip_extra_index_url", st.lists(URL, max_size=2))
    maybe("pip_secret_mounts", st.lists(st.tuples(ABS_PATH, ABS_PATH), max_size=2))
    maybe("pip_extra_args", LINE.filter(lambda s: "://" not in s))
    maybe("registry_config", ABS_PATH)
    maybe("entrypoint", st.none() | st.lists(TEXT, max_size=3))
    maybe("commands", st.lists(TEXT, max_size=3))
    maybe("tag_format", TAG_FORMAT)
    maybe("copy", st.lists(REL_PATH, max_size=3))
    maybe("python_exec", ABS_PATH)
    maybe("builder_options", JSON_MAP)
    maybe("builder_config", JSON_MAP)
    return f


# Trees: relative path -> (content, executable). Names avoid everything an ignore rule could match
# (dot files, __pycache__, .venv, ...), so every file is selected.
SEGMENT = st.sampled_from(["a", "b", "c", "a-b", "a.b", "B", "x_1", "é", "long name"])
TREE_PATH = st.lists(SEGMENT, min_size=1, max_size=3).map("/".join)


def _no_file_is_a_folder(paths: list[str]) -> bool:
    return not any(q.startswith(p + "/") for p in paths for q in paths)


TREE = st.dictionaries(
    TREE_PATH, st.tuples(st.binary(max_size=40), st.booleans()), min_size=1, max_size=8
).filter(lambda t: _no_file_is_a_folder(list(t)))


def write_files(
    root: Path, tree: Mapping[str, tuple[bytes, bool]], order: list[str], dirs_first: list[str]
) -> Path:
    """Creates `tree` under `root`: the folders in `dirs_first` first, then the files in `order`."""
    root.mkdir(parents=True, exist_ok=True)
    for rel in dirs_first:
        (root / rel).mkdir(parents=True, exist_ok=True)
    for rel in order:
        content, executable = tree[rel]
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(0o755 if executable else 0o644)
    return root


def folders_of(tree: Mapping[str, Any]) -> list[str]:
    return sorted({str(Path(p).parent) for p in tree} - {"."})


@contextlib.contextmanager
def chdir(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


@contextlib.contextmanager
def tmp_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="imagespec-prop-") as tmp:
        yield Path(tmp)


def reordered(value: Any, rnd: random.Random) -> Any:
    """The same value with every map (at any depth) rebuilt in a shuffled insertion order."""
    if isinstance(value, Mapping):
        items = list(value.items())
        rnd.shuffle(items)
        return {k: reordered(v, rnd) for k, v in items}
    if isinstance(value, list):
        return [reordered(v, rnd) for v in value]
    return value


def ref_tag(fields: Mapping[str, Any], base_dir: Path) -> str:
    return ref.spec_tag(fields, base_dir, host_arch=HOST_ARCH)


# ---------------------------------------------------------------------------------------------
# (a) Dict insertion order


@settings(max_examples=examples(60), deadline=None)
@given(env=st.dictionaries(ENV_KEY, TEXT, max_size=6), options=JSON_MAP, config=JSON_MAP, rnd=st.randoms())
def test_tag_is_independent_of_dict_insertion_order(
    env: dict[str, str], options: dict[str, Any], config: dict[str, Any], rnd: random.Random
) -> None:
    def build(e: dict[str, str], o: dict[str, Any], c: dict[str, Any]) -> ImageSpec:
        return ImageSpec(python_version="3.11", env=e, builder_options=o, builder_config=c)

    a = build(env, options, config)
    b = build(reordered(env, rnd), reordered(options, rnd), reordered(config, rnd))
    c = build(dict(reversed(env.items())), dict(reversed(options.items())), dict(reversed(config.items())))
    assert a.id == b.id == c.id
    assert a.tag == b.tag == c.tag
    assert a == b == c and hash(a) == hash(b) == hash(c)
    assert a.to_yaml() == b.to_yaml() == c.to_yaml()
    # the independent implementation agrees on these random maps
    assert ref.spec_id(a.to_dict()) == a.id
    assert ref_tag(a.to_dict(), Path.cwd()) == a.tag


# ---------------------------------------------------------------------------------------------
# (b) File creation order, (c) absolute location


@fixture_settings(25)
@given(tree=TREE, data=st.data())
def test_tag_is_independent_of_file_creation_order(
    tree: dict[str, tuple[bytes, bool]], data: st.DataObject
) -> None:
    files, folders = sorted(tree), folders_of(tree)
    with tmp_dir() as tmp:
        tags = []
        for name in ("one", "two"):
            order = data.draw(st.permutations(files))
            dirs_first = data.draw(st.permutations(folders))
            root = write_files(tmp / name / "proj", tree, order, dirs_first)
            with chdir(root.parent):
                spec = ImageSpec(
                    python_version="3.11", source_root=str(root), source_copy_mode="ALL", copy=["proj"]
                )
                tags.append(spec.tag)
                assert sorted(spec.tag_inputs()["files"]) == sorted(
                    [f"source/{p}" for p in files] + [f"copy/proj/{p}" for p in files]
                )
                assert ref_tag(spec.to_dict(), root.parent) == spec.tag
        assert tags[0] == tags[1]


LOCATION = st.lists(
    st.text(st.sampled_from(string.ascii_letters + string.digits + " -_é☃"), min_size=1, max_size=8).filter(
        lambda s: s.strip() != ""
    ),
    min_size=1,
    max_size=4,
)


@fixture_settings(20)
@given(tree=TREE, here=LOCATION, there=LOCATION)
def test_tag_is_independent_of_the_checkout_location(
    tree: dict[str, tuple[bytes, bool]], here: list[str], there: list[str]
) -> None:
    assume(here != there)
    with tmp_dir() as tmp:
        results = []
        for i, location in enumerate((here, there)):
            checkout = tmp / str(i) / Path(*location)
            root = write_files(checkout / "proj", tree, sorted(tree), [])
            (checkout / "requirements.txt").write_text("pandas\n")
            with chdir(checkout):
                spec = ImageSpec(
                    python_version="3.11",
                    source_root=str(root),
                    source_copy_mode="ALL",
                    requirements=str(checkout / "requirements.txt"),
                    copy=["proj"],
                )
                results.append((spec.id, spec.tag, spec.tag_inputs()["files"]))
        assert results[0] == results[1]


# ---------------------------------------------------------------------------------------------
# (d) Framing


@st.composite
def resplit(draw: st.DrawFn) -> tuple[list[str], list[str]]:
    """Two lists with the same concatenation, split differently."""
    items = draw(st.lists(TEXT, max_size=5))
    joined = "".join(items)
    cuts = sorted(draw(st.lists(st.integers(0, len(joined)), max_size=5)))
    other = [joined[i:j] for i, j in zip([0, *cuts], [*cuts, len(joined)])]
    assume(other != items)
    return items, other


@settings(max_examples=examples(100), deadline=None)
@given(pair=resplit())
def test_different_splits_of_one_concatenation_give_different_ids(pair: tuple[list[str], list[str]]) -> None:
    a, b = pair
    for field in ("commands", "entrypoint"):
        one = ImageSpec(python_version="3.11", **{field: a})
        two = ImageSpec(python_version="3.11", **{field: b})
        assert one.id != two.id, (field, a, b)
        assert one.tag != two.tag
    assert ref.encode(a) != ref.encode(b)


@settings(max_examples=examples(100), deadline=None)
@given(a=st.lists(TEXT, max_size=4), b=st.lists(TEXT, max_size=4))
def test_different_lists_give_different_ids(a: list[str], b: list[str]) -> None:
    assume(a != b)
    assert ImageSpec(python_version="3.11", commands=a).id != ImageSpec(python_version="3.11", commands=b).id
    # the field name is framed too: the same list in another field is another spec
    assert (
        ImageSpec(python_version="3.11", commands=a).id != ImageSpec(python_version="3.11", entrypoint=a).id
    )


@settings(max_examples=examples(100), deadline=None)
@given(key=ENV_KEY, value=TEXT, cut=st.integers(1, 8))
def test_map_entries_are_framed(key: str, value: str, cut: int) -> None:
    """{"AB": "c"} and {"A": "Bc"}: the same characters, split between key and value differently."""
    assume(cut < len(key))
    other_key, other_value = key[:cut], key[cut:] + value
    one = ImageSpec(python_version="3.11", env={key: value})
    two = ImageSpec(python_version="3.11", env={other_key: other_value})
    assert one.id != two.id
    cfg_one = ImageSpec(python_version="3.11", builder_config={key: value})
    cfg_two = ImageSpec(python_version="3.11", builder_config={other_key: other_value})
    assert cfg_one.id != cfg_two.id


# ---------------------------------------------------------------------------------------------
# (e) Content and exec bit change the tag; mtime and other permission bits do not


OLD = 1_000_000_000 * 10**9  # 2001: old enough for the digest cache to keep the digests


@fixture_settings(30)
@given(tree=TREE, data=st.data())
def test_one_files_content_or_exec_bit_changes_the_tag_mtime_does_not(
    tree: dict[str, tuple[bytes, bool]], data: st.DataObject
) -> None:
    with tmp_dir() as tmp:
        root = write_files(tmp / "proj", tree, sorted(tree), [])
        for rel in tree:
            os.utime(root / rel, ns=(OLD, OLD))
        spec = ImageSpec(python_version="3.11", source_root=str(root), source_copy_mode="ALL")
        spec_id, before = spec.id, spec.tag
        assert spec.tag == before  # now from the digest cache
        assert ref_tag(spec.to_dict(), tmp) == before

        rel = data.draw(st.sampled_from(sorted(tree)), label="file")
        path = root / rel
        content, executable = tree[rel]

        # mtime alone: same tag
        mtime = data.draw(st.integers(0, 2**33), label="mtime") * 10**9
        os.utime(path, ns=(mtime, mtime))
        assert spec.tag == before

        # content: a different tag, even with the same size and the old mtime restored
        same_size = st.binary(min_size=len(content), max_size=len(content))
        new = data.draw(same_size | st.binary(max_size=40), label="content")
        assume(new != content)
        path.write_bytes(new)
        os.utime(path, ns=(OLD, OLD))
        changed = spec.tag
        assert changed != before
        assert ref_tag(spec.to_dict(), tmp) == changed
        path.write_bytes(content)
        os.utime(path, ns=(OLD, OLD))
        assert spec.tag == before

        # exec bit: any execute bit counts; the other permission bits do not
        mode = 0o755 if executable else 0o644
        exec_bits = data.draw(st.sampled_from([0o100, 0o010, 0o001, 0o111]), label="exec bits")
        flipped = (mode & ~0o111) if executable else (mode | exec_bits)
        path.chmod(flipped)
        assert spec.tag != before
        assert ref_tag(spec.to_dict(), tmp) == spec.tag
        path.chmod(mode)
        assert spec.tag == before
        other_bits = (mode & 0o111) | data.draw(
            st.sampled_from([0o600, 0o640, 0o666, 0o400]), label="other bits"
        )
        if executable:
            other_bits |= exec_bits
        path.chmod(other_bits)
        assert spec.tag == before
        assert spec.id == spec_id  # files never enter the id


# ---------------------------------------------------------------------------------------------
# (f) Round trips


@fixture_settings(80)
@given(fields=spec_fields())
def test_dict_and_yaml_round_trips(fields: dict[str, Any]) -> None:
    spec = ImageSpec(**fields)
    again = ImageSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.to_dict() == spec.to_dict()
    assert again.id == spec.id
    with tmp_dir() as tmp:
        text = spec.to_yaml(tmp / "image.yaml")
        loaded = ImageSpec.from_yaml(tmp / "image.yaml")
    # to_yaml writes URL credentials as *** (docs/security.md); everything else comes back.
    shown = ImageSpec.from_dict(spec._core.to_dict(redact=True))
    assert loaded == shown, text
    assert loaded.to_dict() == shown.to_dict(), text
    assert loaded.id == spec.id
    # and the independent implementation gives the same id for every random valid spec
    assert ref.spec_id(spec.to_dict(), host_arch=HOST_ARCH) == spec.id


@settings(max_examples=examples(100), deadline=None)
@given(values=st.lists(TEXT, min_size=1, max_size=4), env=st.dictionaries(ENV_KEY, TEXT, max_size=3))
def test_arbitrary_text_survives_yaml(values: list[str], env: dict[str, str]) -> None:
    spec = ImageSpec(
        python_version="3.11",
        commands=values,
        entrypoint=values,
        env=env,
        builder_config={v: v for v in values},
    )
    with tmp_dir() as tmp:
        spec.to_yaml(tmp / "image.yaml")
        loaded = ImageSpec.from_yaml(tmp / "image.yaml")
    assert loaded.commands == spec.commands
    assert dict(loaded.env or {}) == env
    assert loaded == spec


@pytest.mark.parametrize("number", [math.nan, -math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused(number: float) -> None:
    """NaN has many bit patterns and YAML writes them all as .nan, so none could hash stably."""
    with pytest.raises(SpecError, match="builder_config: contains NaN or an infinite number"):
        ImageSpec(python_version="3.11", builder_config={"x": [{"y": number}]})


def test_negative_zero_is_its_own_value() -> None:
    """-0.0 and 0.0 are different specs (the encoding keeps the float's bits), so the round-trip
    property above would see a float that lost its sign."""
    a = ImageSpec(python_version="3.11", builder_config={"x": -0.0})
    b = ImageSpec(python_version="3.11", builder_config={"x": 0.0})
    assert a != b and a.id != b.id
