"""The fields extension: which parts of each Item a search returns.

Without ``fields`` an Item is returned whole. With it, the Item holds the default set (``id``,
``type``, ``stac_version``, ``collection``, ``geometry``, ``bbox``, ``links``, ``assets``,
``properties.datetime``) plus what ``include`` names, minus what ``exclude`` names (the
extension's set semantics). Names are dotted paths (``properties.country``, ``assets.s1``); a
bare property name (``country``) means ``properties.country``. Columns that the result does not
need are not read at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from lake.errors import QueryError

TOP_LEVEL = (
    "type",
    "stac_version",
    "stac_extensions",
    "id",
    "collection",
    "geometry",
    "bbox",
    "properties",
    "links",
    "assets",
)
DEFAULT = (
    "id",
    "type",
    "stac_version",
    "collection",
    "geometry",
    "bbox",
    "links",
    "assets",
    "properties.datetime",
)

#: Dotted paths as a nested dict: a key maps to None (the whole value) or to a sub-tree.
Tree = dict[str, Any]


def _tree(paths: Iterable[str]) -> Tree:
    root: Tree = {}
    for path in paths:
        node = root
        parts = path.split(".")
        for part in parts[:-1]:
            if part in node and node[part] is None:
                break  # an ancestor is already whole
            node = node.setdefault(part, {})
        else:
            node[parts[-1]] = None
    return root


def _project(obj: Mapping[str, Any], tree: Tree) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, sub in tree.items():
        if key not in obj:
            continue
        value = obj[key]
        if sub is None:
            out[key] = value
        elif isinstance(value, Mapping):
            out[key] = _project(value, sub)
    return out


def _remove(obj: Mapping[str, Any], tree: Tree) -> dict[str, Any]:
    """A copy of ``obj`` without the paths of ``tree`` (``obj`` itself is not changed)."""
    out = dict(obj)
    for key, sub in tree.items():
        if key not in out:
            continue
        if sub is None:
            del out[key]
        elif isinstance(out[key], Mapping):
            out[key] = _remove(out[key], sub)
    return out


def _walk(tree: Tree, path: str) -> str:
    """``whole``, ``part`` or ``none``: how much of ``path`` the tree covers."""
    node: Any = tree
    for part in path.split("."):
        if part not in node:
            return "none"
        node = node[part]
        if node is None:
            return "whole"
    return "part"


def _normal(name: str) -> str:
    name = name.strip()
    if not name or any(c in name for c in "\x00\n\r\t"):
        raise QueryError(f"field {name!r} is not a field name")
    head = name.split(".", 1)[0]
    return name if head in TOP_LEVEL else f"properties.{name}"


@dataclass(frozen=True)
class Fields:
    """A fields selection.

    Attributes:
        include: Paths to add to the default set.
        exclude: Paths to remove.
        given: Whether the search named fields at all (if not, Items are whole).
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    given: bool = False

    @classmethod
    def parse(cls, value: str | Sequence[str] | Mapping[str, Any] | Fields | None) -> Fields:
        """Read ``fields`` as GET (``id,-geometry``), a list of such names, or a POST object.

        Raises:
            QueryError: It is neither of these.
        """
        if value is None:
            return cls()
        if isinstance(value, Fields):
            return value
        include: list[str] = []
        exclude: list[str] = []
        if isinstance(value, Mapping):
            unknown = set(value) - {"include", "exclude"}
            if unknown:
                raise QueryError(f"fields has unknown keys {sorted(unknown)}: use include, exclude")
            for key, target in (("include", include), ("exclude", exclude)):
                names = value.get(key) or []
                if isinstance(names, str) or not isinstance(names, Sequence):
                    raise QueryError(f"fields.{key} must be a list of field names, not {names!r}")
                target.extend(_normal(str(n)) for n in names)
            return cls(tuple(include), tuple(exclude), True)
        names = value.split(",") if isinstance(value, str) else list(value)
        for raw in names:
            if not isinstance(raw, str):
                raise QueryError(f"field {raw!r} is not a field name")
            if not raw.strip():
                continue
            if raw.startswith("-"):
                exclude.append(_normal(raw[1:]))
            else:
                include.append(_normal(raw.removeprefix("+")))
        return cls(tuple(include), tuple(exclude), True)

    def to_get(self) -> str:
        """The GET form (``id,-geometry``)."""
        return ",".join([*self.include, *(f"-{e}" for e in self.exclude)])

    def to_post(self) -> dict[str, list[str]]:
        """The POST form."""
        return {"include": list(self.include), "exclude": list(self.exclude)}

    @cached_property
    def _wanted(self) -> Tree:
        return _tree([*DEFAULT, *self.include])

    @cached_property
    def _unwanted(self) -> Tree:
        return _tree(self.exclude)

    def needs(self, key: str) -> bool:
        """Whether the result needs top-level ``key`` or property ``properties.<name>``."""
        if not self.given:
            return True
        if _walk(self._wanted, key) == "none":
            return False
        return _walk(self._unwanted, key) != "whole"

    def apply(self, item: dict[str, Any]) -> dict[str, Any]:
        """The Item reduced to the selection (the Item itself when no fields were given)."""
        if not self.given:
            return item
        return _remove(_project(item, self._wanted), self._unwanted)
