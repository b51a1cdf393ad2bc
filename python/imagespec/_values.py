"""The list and dict types of `ImageSpec` fields: flytekit's types, but read-only.

flytekit's ImageSpec fields are plain lists and dicts, so code written for it compares them with
``==``, adds them (``spec.packages + ["numpy"]``), checks ``isinstance(x, list)`` and passes them
to JSON. Ours are those types too, but a spec is an immutable value (its hash and its id must
not change under it), so every in-place change raises, naming the method that makes a changed
copy instead.
"""

from __future__ import annotations

# Not `from typing import TYPE_CHECKING`: see _spec.py.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, NoReturn, SupportsIndex


def _refuse(what: str, field: str | None) -> NoReturn:
    if field is None:
        raise TypeError(f"ImageSpec fields are read-only ({what}); use spec.replace(...) for a changed copy")
    hint = f"spec.with_{field}(...)" if field in _WITH else f"spec.replace({field}=...)"
    raise TypeError(f"ImageSpec.{field} is read-only ({what}); {hint} gives a changed copy")


_WITH = frozenset(("packages", "apt_packages", "commands", "copy", "runtime_packages", "builder_options"))


class FrozenList(list):  # type: ignore[type-arg]
    """A list that cannot change: equal to the same plain list, hashable like a tuple."""

    __slots__ = ("_field",)

    def __init__(self, items: Any = (), field: str | None = None) -> None:
        list.__init__(self, items)
        self._field = field

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenList, (list(self), self._field))

    def __copy__(self) -> FrozenList:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenList:
        return self

    def _no(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("a list that cannot change", self._field)

    append = extend = insert = remove = clear = sort = reverse = _no
    __setitem__ = __delitem__ = _no

    def pop(self, index: SupportsIndex = -1) -> Any:
        self._no()

    def __iadd__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._no()

    def __imul__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._no()


class FrozenDict(dict):  # type: ignore[type-arg]
    """A dict that cannot change: equal to the same plain dict."""

    __slots__ = ("_field",)

    def __init__(self, items: Any = (), field: str | None = None) -> None:
        dict.__init__(self, items)
        self._field = field

    __hash__ = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self), self._field))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def _no(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("a dict that cannot change", self._field)

    update = setdefault = clear = popitem = _no
    __setitem__ = __delitem__ = _no

    def pop(self, key: Any, default: Any = None) -> Any:
        self._no()

    def __ior__(self, other: Any) -> NoReturn:  # type: ignore[misc]
        self._no()
