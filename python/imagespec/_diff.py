"""Why two tags differ: field by field and file by file, between two specs, or between a spec and
the spec an image was built from (its ``dev.imagespec.*`` labels)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from imagespec._spec import ImageSpec

ChangeKind = Literal["name", "field", "base_image", "file", "recipe"]

# Fields that name the image but do not enter its tag.
_NAMING = ("name", "registry")


@dataclass(frozen=True)
class Change:
    """One difference: ``before``/``after`` is None where the field, file or base is absent."""

    kind: ChangeKind
    key: str
    before: Any
    after: Any

    def describe(self) -> str:
        if self.kind == "file":
            if self.before is None:
                return f"file {self.key}: added"
            if self.after is None:
                return f"file {self.key}: removed"
            return f"file {self.key}: content changed"
        what = {"name": "", "field": "", "base_image": "", "recipe": ""}[self.kind]
        return f"{what}{self.key}: {_show(self.before)} -> {_show(self.after)}"


def _show(v: Any) -> str:
    return "(unset)" if v is None else json.dumps(v)


@dataclass(frozen=True)
class Side:
    """One side of a diff: a spec now, or the spec an image records."""

    label: str
    image: str
    tag: str | None
    recipe: int | None
    shown: dict[str, Any]
    """Name, registry, identity fields as hashed, ``base_image_name``: the image label's form."""
    files: dict[str, str] | None
    """Sub-digest per file; None for an image (it records no per-file digests)."""

    @classmethod
    def of_spec(cls, spec: ImageSpec, label: str) -> Side:
        inputs = spec.tag_inputs()
        return cls(
            label=label,
            image=spec._core.image_name(spec._loaded()),
            tag=inputs["tag"],
            recipe=inputs["recipe_version"],
            shown=json.loads(spec._core.shown(spec._loaded())),
            files=dict(inputs["files"]),
        )

    @classmethod
    def of_image(cls, reference: str, **inspect_options: Any) -> Side:
        from imagespec._core import RegistryError
        from imagespec._inspect import inspect

        info = inspect(reference, **inspect_options)
        if info.spec is None:
            raise RegistryError(f"{reference} was not built by imagespec: it has no dev.imagespec.spec label")
        recipe = info.label("recipe")
        return cls(
            label=reference,
            image=reference,
            tag=info.label("tag"),
            recipe=int(recipe) if recipe and recipe.isdigit() else None,
            shown=info.spec,
            files=None,
        )


@dataclass(frozen=True)
class Diff:
    a: Side
    b: Side
    changes: tuple[Change, ...]

    @property
    def same_tag(self) -> bool:
        return self.a.tag is not None and self.a.tag == self.b.tag

    def explain(self) -> str:
        lines = [f"a: {self.a.label} -> {self.a.image}", f"b: {self.b.label} -> {self.b.image}"]
        if self.same_tag:
            lines.append("same tag: the images are the same")
        else:
            lines.append(f"the tags differ ({self.a.tag} vs {self.b.tag}) because of:")
        tagged = [c for c in self.changes if c.kind != "name"]
        for c in tagged:
            lines.append(f"  {c.describe()}")
        if not self.same_tag and not tagged:
            if self.a.files is None or self.b.files is None:
                lines.append(
                    "  the fields, base image and recipe are equal, so a file of source_root, copy or "
                    "requirements changed (an image records no per-file digests; diff two specs to list them)"
                )
            else:
                lines.append("  nothing recorded differs (tag scheme versions differ?)")
        naming = [c for c in self.changes if c.kind == "name"]
        if naming:
            lines.append("and the name differs (this does not change the tag):")
            lines.extend(f"  {c.describe()}" for c in naming)
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": {"label": self.a.label, "image": self.a.image, "tag": self.a.tag},
            "b": {"label": self.b.label, "image": self.b.image, "tag": self.b.tag},
            "same_tag": self.same_tag,
            "changes": [
                {"kind": c.kind, "key": c.key, "before": c.before, "after": c.after} for c in self.changes
            ],
        }


def compare(a: Side, b: Side) -> Diff:
    changes: list[Change] = []
    if a.recipe != b.recipe and a.recipe is not None and b.recipe is not None:
        changes.append(Change("recipe", "recipe version", a.recipe, b.recipe))
    for key in sorted(set(a.shown) | set(b.shown)):
        before, after = a.shown.get(key), b.shown.get(key)
        if before == after:
            continue
        kind: ChangeKind = "name" if key in _NAMING else "base_image" if key == "base_image_name" else "field"
        changes.append(Change(kind, key, before, after))
    if a.files is not None and b.files is not None:
        for path in sorted(set(a.files) | set(b.files)):
            before, after = a.files.get(path), b.files.get(path)
            if before != after:
                changes.append(Change("file", path, before, after))
    return Diff(a, b, tuple(changes))


def diff(a: ImageSpec | str, b: ImageSpec | str) -> Diff:
    """Why ``a`` and ``b`` (specs, or image references whose labels record their spec) have
    different tags.

    >>> old = ImageSpec(name="app", packages=["pandas"], python_version="3.11")
    >>> new = old.with_packages("numpy")
    >>> print(diff(old, new).explain().splitlines()[-1])
      packages: ["pandas"] -> ["pandas", "numpy"]
    """

    def side(x: ImageSpec | str, label: str) -> Side:
        return Side.of_spec(x, label) if isinstance(x, ImageSpec) else Side.of_image(x)

    return compare(side(a, "a"), side(b, "b"))
