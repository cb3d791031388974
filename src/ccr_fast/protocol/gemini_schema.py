"""JSON Schema (as tools declare it) → the OpenAPI-3.0 ``Schema`` subset Gemini's ``parameters`` accepts.

Gemini parses ``functionDeclarations[].parameters`` as a protobuf message, so a single keyword it does not
know ("Invalid JSON payload received. Unknown name ...") or a shape it does not allow fails the *whole*
request, not just that tool.  Claude Code sends dozens of tools, many generated from MCP servers or pydantic
models, so the output is built from an allow-list instead of stripping known offenders from a copy: only
keys Gemini documents are ever written, each one checked for the type the proto expects.

What is rewritten rather than dropped, because dropping would lose meaning the model can use:

* ``type: [x, "null"]`` ("Proto field is not repeating") → ``type: X, nullable: true``; several non-null
  types become an ``anyOf`` with one branch per type, each branch getting only the keywords of its type
  (``properties`` on an ARRAY branch is rejected with "only allowed for OBJECT type");
* ``const`` → a one-value ``enum``; ``exclusiveMinimum/Maximum`` (numeric form) → ``minimum/maximum``;
* ``oneOf`` → ``anyOf``; ``{"type": "null"}`` branches → ``nullable`` on the parent; an ``anyOf`` left with a
  single branch is merged into its parent; ``allOf`` branches are merged into one schema.  An ``anyOf`` next
  to a ``type`` only narrows that type further, so the typed keywords are kept and the ``anyOf`` is not;
* ``$ref`` → the referenced schema inlined (``#/$defs/...``, ``#/definitions/...``, any ``#/`` pointer and
  ``#``).  A reference back into a schema that is still being expanded (a recursive type) becomes ``{}``,
  an unconstrained value, so expansion always terminates;
* an array without ``items`` ("missing field") gets ``items: {}``, or the ``prefixItems`` of a tuple merged
  into one ``anyOf``, so element types are not silently lost;
* ``required`` keeps only names present in ``properties`` (Gemini rejects the others), and an empty
  ``properties`` map is left out ("should be non-empty for OBJECT type").

Dropped because the Schema proto has no counterpart: ``$schema``, ``$id``, ``$defs``,
``additionalProperties``, ``propertyNames``, ``patternProperties``, ``multipleOf``, ``not``,
``if/then/else``, ``examples``, ``readOnly``, and every other keyword outside the allow-list.  ``enum``
survives only on strings (Gemini's enum is a string format) and ``format`` only with the values Gemini
lists for the type.  Losing a constraint makes the schema looser, never stricter, so the model can still
produce every argument the tool accepts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, TypeGuard

__all__ = ["function_parameters", "to_gemini_schema"]

JSONDict = dict[str, Any]

#: JSON Schema type name → Gemini's Type enum value
_TYPES: Final[Mapping[str, str]] = {
    "string": "STRING",
    "number": "NUMBER",
    "integer": "INTEGER",
    "boolean": "BOOLEAN",
    "array": "ARRAY",
    "object": "OBJECT",
}
#: the ``format`` values Gemini documents, per type
_FORMATS: Final[Mapping[str, frozenset[str]]] = {
    "string": frozenset({"date-time"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}
_COUNTS: Final[Mapping[str, tuple[str, ...]]] = {
    "string": ("minLength", "maxLength"),
    "array": ("minItems", "maxItems"),
    "object": ("minProperties", "maxProperties"),
}
#: keywords that only make sense for one type, used to guess the type when a schema leaves it out
_HINTS: Final = (
    ("object", ("properties", "required", "minProperties", "maxProperties")),
    ("array", ("items", "prefixItems", "minItems", "maxItems")),
    ("string", ("minLength", "maxLength", "pattern")),
    ("number", ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")),
)
#: deeper than this a schema is cut to ``{}``: no real tool nests that far, and it bounds the recursion on
#: hostile input (a request must never fail with RecursionError)
MAX_DEPTH: Final = 40
_ROOT: Final = "#"


def to_gemini_schema(schema: Any) -> JSONDict:
    """Any JSON Schema (a tool's ``input_schema`` or a part of one) as a Gemini ``Schema`` object.

    References are resolved against ``schema`` itself, which is how tool schemas carry their ``$defs``.
    Never raises: what cannot be expressed becomes looser, in the worst case ``{}`` (any value).
    """
    return _Cleaner(schema).node(schema, (_ROOT,), 0)


def function_parameters(schema: Any) -> JSONDict | None:
    """A tool's ``input_schema`` as ``functionDeclaration.parameters``, or None when it takes no arguments.

    Gemini rejects ``{"type": "OBJECT", "properties": {}}`` at the top level ("properties: should be
    non-empty for OBJECT type"), so a tool without properties is declared without ``parameters``.
    """
    cleaned = to_gemini_schema(schema)
    properties = cleaned.get("properties")
    if not properties:
        return None
    out: JSONDict = {"type": "OBJECT", "properties": properties}
    for key in ("required", "propertyOrdering", "description", "title", "minProperties", "maxProperties"):
        if key in cleaned:
            out[key] = cleaned[key]
    return out


class _Cleaner:
    """One conversion: holds the root schema that ``$ref`` pointers are resolved against."""

    __slots__ = ("_root",)

    def __init__(self, root: Any) -> None:
        self._root = root

    def node(self, raw: Any, refs: tuple[str, ...], depth: int) -> JSONDict:
        """``raw`` cleaned; ``refs`` are the references being expanded on the way here (cycle guard)."""
        if depth > MAX_DEPTH:
            return {}
        schema, refs = self._flatten(raw, refs, depth)
        out = _annotations(schema)
        types, nullable = _declared_types(schema)
        values, null_value = _enum_values(schema)
        nullable = nullable or null_value
        if not types:
            guessed = _guessed_type(schema, values)
            types = [guessed] if guessed is not None else []
        alternatives = schema.get("anyOf") or schema.get("oneOf")
        if types:
            # A typed schema keeps its own keywords; an ``anyOf`` next to them only narrows it further.
            branches = [self._typed(schema, kind, values, refs, depth) for kind in types]
            if len(branches) == 1:
                out.update(branches[0])
            else:
                out["anyOf"] = branches
        elif isinstance(alternatives, list) and alternatives:
            branches, null_branch = self._alternatives(alternatives, refs, depth)
            nullable = nullable or null_branch
            if len(branches) == 1:
                for key, value in branches[0].items():
                    out.setdefault(key, value)
            elif branches:
                out["anyOf"] = branches
        if nullable:
            out["nullable"] = True
        return out

    # --- references and composition -------------------------------------------------------------------

    def _flatten(
        self, raw: Any, refs: tuple[str, ...], depth: int
    ) -> tuple[Mapping[str, Any], tuple[str, ...]]:
        """``raw`` with ``$ref`` inlined and ``allOf`` merged, as one mapping of plain keywords."""
        if not isinstance(raw, Mapping):
            return {}, refs  # boolean schemas: ``true`` is "anything"; ``false`` has no Gemini form
        schema: Mapping[str, Any] = raw
        while "$ref" in schema:
            ref = schema["$ref"]
            siblings = {k: v for k, v in schema.items() if k != "$ref"}
            target = self._resolve(ref) if isinstance(ref, str) and ref not in refs else None
            if target is None:
                schema = siblings  # unknown or recursive reference: unconstrained, keeping its description
                break
            refs = (*refs, ref)
            schema = {**target, **siblings}  # keywords next to $ref (a description, say) win
        parts = schema.get("allOf")
        if isinstance(parts, list) and parts and depth <= MAX_DEPTH:
            merged: JSONDict = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                flat, refs = self._flatten(part, refs, depth + 1)
                merged = _merged(merged, flat)
            schema = merged
        return schema, refs

    def _resolve(self, ref: str) -> Mapping[str, Any] | None:
        """The schema a local JSON pointer (``#``, ``#/$defs/Name``, ``#/a/b~1c``) names, or None."""
        if ref == _ROOT:
            return self._root if isinstance(self._root, Mapping) else None
        if not ref.startswith(_ROOT + "/"):
            return None  # remote references cannot be fetched from inside a request
        node: Any = self._root
        for token in ref[2:].split("/"):
            key = token.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return None
        return node if isinstance(node, Mapping) else None

    def _alternatives(
        self, alternatives: list[Any], refs: tuple[str, ...], depth: int
    ) -> tuple[list[JSONDict], bool]:
        """Cleaned ``anyOf`` branches without the null ones, and whether there was a null one.

        A branch that constrains nothing (``{}``, a lone description) admits every value, null included,
        so the whole ``anyOf`` says nothing and is dropped (an empty list and False come back).
        """
        branches: list[JSONDict] = []
        null_branch = False
        for alternative in alternatives:
            flat, _ = self._flatten(alternative, refs, depth + 1)
            if flat.get("type") == "null" or flat.get("const", ...) is None:
                null_branch = True
                continue
            branch = self.node(alternative, refs, depth + 1)
            if "type" not in branch and "anyOf" not in branch:
                return [], False  # "anything" includes null
            if branch not in branches:
                branches.append(branch)
        return branches, null_branch

    # --- one type ---------------------------------------------------------------------------------------

    def _typed(
        self, schema: Mapping[str, Any], kind: str, values: list[str], refs: tuple[str, ...], depth: int
    ) -> JSONDict:
        """``type`` and the keywords of ``schema`` that apply to ``kind``."""
        out: JSONDict = {"type": _TYPES[kind]}
        fmt = schema.get("format")
        if isinstance(fmt, str) and fmt in _FORMATS.get(kind, ()):
            out["format"] = fmt
        if kind == "string":
            if values:
                out["enum"] = values
            if isinstance(schema.get("pattern"), str):
                out["pattern"] = schema["pattern"]
        elif kind in ("number", "integer"):
            out.update(_bounds(schema, integer=kind == "integer"))
        elif kind == "array":
            out["items"] = self._items(schema, refs, depth)
        elif kind == "object":
            out.update(self._object(schema, refs, depth))
        for key in _COUNTS.get(kind, ()):
            if _is_count(schema.get(key)):
                out[key] = schema[key]
        return out

    def _items(self, schema: Mapping[str, Any], refs: tuple[str, ...], depth: int) -> JSONDict:
        items = schema.get("items")
        if isinstance(items, Mapping):
            return self.node(items, refs, depth + 1)
        # Tuples: draft 2020-12 ``prefixItems`` or the older list form of ``items``.
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else items
        if isinstance(prefix, list) and prefix:
            return self.node({"anyOf": prefix}, refs, depth + 1)
        return {}

    def _object(self, schema: Mapping[str, Any], refs: tuple[str, ...], depth: int) -> JSONDict:
        out: JSONDict = {}
        properties = schema.get("properties")
        if isinstance(properties, Mapping) and properties:
            cleaned = {
                name: self.node(value, refs, depth + 1)
                for name, value in properties.items()
                if isinstance(name, str)
            }
            out["properties"] = cleaned
            required = schema.get("required")
            if isinstance(required, list):
                names = list(dict.fromkeys(r for r in required if isinstance(r, str) and r in cleaned))
                if names:
                    out["required"] = names
            ordering = schema.get("propertyOrdering")
            if isinstance(ordering, list) and all(isinstance(o, str) and o in cleaned for o in ordering):
                out["propertyOrdering"] = ordering
        return out


# --- helpers ------------------------------------------------------------------------------------------------


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _annotations(schema: Mapping[str, Any]) -> JSONDict:
    """The keywords that apply whatever the type."""
    out: JSONDict = {}
    for key in ("title", "description"):
        if isinstance(schema.get(key), str):
            out[key] = schema[key]
    for key in ("default", "example"):
        if key in schema:
            out[key] = schema[key]
    return out


def _declared_types(schema: Mapping[str, Any]) -> tuple[list[str], bool]:
    """The known non-null types of ``type`` (a string or a list), and whether null is allowed."""
    declared = schema.get("type")
    names = declared if isinstance(declared, list) else [declared]
    types = list(dict.fromkeys(n for n in names if isinstance(n, str) and n in _TYPES))
    if "integer" in types and "number" in types:
        types.remove("integer")  # every integer is a number; one branch fewer
    return types, "null" in names or schema.get("nullable") is True


def _enum_values(schema: Mapping[str, Any]) -> tuple[list[str], bool]:
    """String values of ``enum`` (or of ``const``), and whether null is one of the values."""
    if "enum" in schema:
        enum = schema["enum"]
        values = enum if isinstance(enum, list) else []
    elif "const" in schema:
        values = [schema["const"]]
    else:
        return [], False
    strings = list(dict.fromkeys(v for v in values if isinstance(v, str)))
    return strings, any(v is None for v in values)


def _guessed_type(schema: Mapping[str, Any], values: list[str]) -> str | None:
    """The type a schema without ``type`` evidently has (string enums, properties, items ...), if any."""
    if values:
        return "string"
    for kind, keywords in _HINTS:
        if any(keyword in schema for keyword in keywords):
            return kind
    return None


def _bounds(schema: Mapping[str, Any], *, integer: bool) -> JSONDict:
    """``minimum``/``maximum``, folding in the numeric (draft 6+) exclusive bounds as the closest inclusive
    ones (the next integer for integers); the boolean draft-4 form only qualifies an existing bound, so it is
    simply dropped."""
    out: JSONDict = {}
    for inclusive, exclusive, step, stricter in (
        ("minimum", "exclusiveMinimum", 1, max),
        ("maximum", "exclusiveMaximum", -1, min),
    ):
        bounds: list[int | float] = []
        if _is_number(schema.get(inclusive)):
            bounds.append(schema[inclusive])
        limit = schema.get(exclusive)
        if _is_number(limit):
            bounds.append(limit + step if integer and isinstance(limit, int) else limit)
        if bounds:
            out[inclusive] = stricter(bounds)
    return out


def _merged(base: Mapping[str, Any], extra: Mapping[str, Any]) -> JSONDict:
    """Two ``allOf`` branches as one schema: properties and required lists are united, other keywords of
    ``base`` win (a property's own description over the one of a shared definition)."""
    out = dict(base)
    for key, value in extra.items():
        current = out.get(key)
        if key == "properties" and isinstance(current, Mapping) and isinstance(value, Mapping):
            out[key] = {**value, **current}
        elif key == "required" and isinstance(current, list) and isinstance(value, list):
            out[key] = [*current, *(v for v in value if v not in current)]
        else:
            out.setdefault(key, value)
    return out
