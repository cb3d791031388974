"""JSON Schema → Gemini Schema: one row per keyword Gemini rejects, references, composition, and a property
test that whatever goes in, only the Schema subset Gemini accepts comes out."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccr_fast.protocol.gemini_schema import MAX_DEPTH, function_parameters, to_gemini_schema

#: every key the Schema proto knows, and what its value must look like
ALLOWED_KEYS = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "properties",
    "required",
    "propertyOrdering",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "pattern",
    "minimum",
    "maximum",
    "minProperties",
    "maxProperties",
    "anyOf",
    "default",
    "example",
}
TYPES = {"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT"}
FORMATS = {"STRING": {"date-time"}, "NUMBER": {"float", "double"}, "INTEGER": {"int32", "int64"}}


def assert_gemini_schema(node: Any, path: str = "$") -> None:
    """What Gemini's parser and validator accept, checked at every level (the rejections of protocols
    §4.3)."""
    assert isinstance(node, dict), path
    assert set(node) <= ALLOWED_KEYS, (path, set(node) - ALLOWED_KEYS)
    kind: str = node.get("type", "")
    if "type" in node:
        assert kind in TYPES, (path, kind)
    if "format" in node:
        assert node["format"] in FORMATS.get(kind, set()), (path, node["format"])
    if "enum" in node:
        assert kind == "STRING" and node["enum"] and all(isinstance(v, str) for v in node["enum"]), path
    if "nullable" in node:
        assert node["nullable"] is True, path
    if kind == "ARRAY":
        assert "items" in node, f"{path}: an array needs items"
    if "items" in node:
        assert kind == "ARRAY", path
        assert_gemini_schema(node["items"], path + ".items")
    if "properties" in node:
        assert kind == "OBJECT" and node["properties"], path
        for name, value in node["properties"].items():
            assert_gemini_schema(value, f"{path}.properties[{name}]")
    if "required" in node:
        assert node["required"] and set(node["required"]) <= set(node.get("properties", {})), path
    if "anyOf" in node:
        assert "type" not in node and len(node["anyOf"]) >= 2, path
        for i, branch in enumerate(node["anyOf"]):
            assert_gemini_schema(branch, f"{path}.anyOf[{i}]")
    for key in ("minItems", "maxItems", "minLength", "maxLength", "minProperties", "maxProperties"):
        if key in node:
            assert isinstance(node[key], int) and not isinstance(node[key], bool) and node[key] >= 0
    for key in ("minimum", "maximum"):
        if key in node:
            assert isinstance(node[key], int | float) and not isinstance(node[key], bool)
            assert kind in ("NUMBER", "INTEGER"), path


# --- one row per keyword ----------------------------------------------------------------------------------

CASES = [
    pytest.param(
        {"$schema": "http://json-schema.org/draft-07/schema#", "type": "string"},
        {"type": "STRING"},
        id="$schema dropped",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False},
        {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}},
        id="additionalProperties false dropped",
    ),
    pytest.param(
        {"type": "object", "additionalProperties": {"type": "integer"}},
        {"type": "OBJECT"},
        id="additionalProperties schema dropped (free-form object)",
    ),
    pytest.param({"const": "fixed"}, {"type": "STRING", "enum": ["fixed"]}, id="const becomes enum of one"),
    pytest.param({"type": "integer", "const": 3}, {"type": "INTEGER"}, id="non-string const dropped"),
    pytest.param(
        {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 10},
        {"type": "NUMBER", "minimum": 0.5, "maximum": 10},
        id="numeric exclusive bounds become inclusive",
    ),
    pytest.param(
        {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 10},
        {"type": "INTEGER", "minimum": 1, "maximum": 9},
        id="integer exclusive bounds become the next integer",
    ),
    pytest.param(
        {"type": "number", "minimum": 5, "exclusiveMinimum": 2},
        {"type": "NUMBER", "minimum": 5},
        id="the stricter bound wins",
    ),
    pytest.param(
        {"type": "number", "minimum": 0, "exclusiveMinimum": True},
        {"type": "NUMBER", "minimum": 0},
        id="draft-4 boolean exclusiveMinimum dropped",
    ),
    pytest.param(
        {"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}},
        {"type": "OBJECT"},
        id="propertyNames dropped",
    ),
    pytest.param({"type": "number", "multipleOf": 0.5}, {"type": "NUMBER"}, id="multipleOf dropped"),
    pytest.param(
        {"type": ["string", "null"], "maxLength": 3},
        {"type": "STRING", "maxLength": 3, "nullable": True},
        id="type with null becomes nullable",
    ),
    pytest.param({"type": ["null", "boolean"]}, {"type": "BOOLEAN", "nullable": True}, id="null first"),
    pytest.param(
        {"type": "string", "nullable": True}, {"type": "STRING", "nullable": True}, id="nullable kept"
    ),
    pytest.param({"type": "null"}, {"nullable": True}, id="lone null type"),
    pytest.param(
        {"type": ["string", "array", "null"], "items": {"type": "integer"}, "minLength": 1, "minItems": 2},
        {
            "anyOf": [
                {"type": "STRING", "minLength": 1},
                {"type": "ARRAY", "items": {"type": "INTEGER"}, "minItems": 2},
            ],
            "nullable": True,
        },
        id="several types become anyOf with each type's keywords",
    ),
    pytest.param({"type": ["integer", "number"]}, {"type": "NUMBER"}, id="integer folded into number"),
    pytest.param({"type": "array"}, {"type": "ARRAY", "items": {}}, id="array without items gets items {}"),
    pytest.param(
        {
            "type": "array",
            "prefixItems": [{"type": "number"}, {"type": "number"}],
            "minItems": 2,
            "maxItems": 2,
        },
        {"type": "ARRAY", "items": {"type": "NUMBER"}, "minItems": 2, "maxItems": 2},
        id="tuple of one type",
    ),
    pytest.param(
        {"type": "array", "items": [{"type": "string"}, {"type": "integer"}]},
        {"type": "ARRAY", "items": {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]}},
        id="old tuple form of items",
    ),
    pytest.param({"type": "array", "items": True}, {"type": "ARRAY", "items": {}}, id="boolean items"),
    pytest.param(
        {"type": "array", "items": {"type": "array"}},
        {"type": "ARRAY", "items": {"type": "ARRAY", "items": {}}},
        id="nested array without items",
    ),
    pytest.param(
        {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        {"anyOf": [{"type": "STRING"}, {"type": "INTEGER"}]},
        id="anyOf kept",
    ),
    pytest.param(
        {"oneOf": [{"type": "string"}, {"type": "boolean"}]},
        {"anyOf": [{"type": "STRING"}, {"type": "BOOLEAN"}]},
        id="oneOf becomes anyOf",
    ),
    pytest.param(
        {"description": "d", "anyOf": [{"type": "object", "properties": {"a": {}}}, {"type": "null"}]},
        {"description": "d", "type": "OBJECT", "properties": {"a": {}}, "nullable": True},
        id="anyOf with null: the one branch merged, nullable",
    ),
    pytest.param(
        {"anyOf": [{"type": "string"}, {}]}, {}, id="an unconstrained branch makes the anyOf say nothing"
    ),
    pytest.param(
        {"anyOf": [{"type": "string"}, {"type": "string"}, {"const": None}]},
        {"type": "STRING", "nullable": True},
        id="duplicate branches and const null",
    ),
    pytest.param(
        {"type": "string", "anyOf": [{"format": "email"}, {"format": "uri"}]},
        {"type": "STRING"},
        id="anyOf next to a type only narrows it",
    ),
    pytest.param(
        {
            "allOf": [
                {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                {"properties": {"b": {"type": "number"}}, "required": ["b"]},
            ]
        },
        {
            "type": "OBJECT",
            "properties": {"a": {"type": "STRING"}, "b": {"type": "NUMBER"}},
            "required": ["a", "b"],
        },
        id="allOf merged",
    ),
    pytest.param(
        {"type": "string", "format": "date-time"}, {"type": "STRING", "format": "date-time"}, id="date-time"
    ),
    pytest.param({"type": "string", "format": "uri"}, {"type": "STRING"}, id="uri format dropped"),
    pytest.param({"type": "string", "format": "email"}, {"type": "STRING"}, id="email format dropped"),
    pytest.param({"type": "integer", "format": "int64"}, {"type": "INTEGER", "format": "int64"}, id="int64"),
    pytest.param({"type": "number", "format": "int32"}, {"type": "NUMBER"}, id="integer format on number"),
    pytest.param(
        {"type": "string", "enum": ["a", "b", None, 3]},
        {"type": "STRING", "enum": ["a", "b"], "nullable": True},
        id="enum keeps strings, null becomes nullable",
    ),
    pytest.param({"type": "integer", "enum": [1, 2]}, {"type": "INTEGER"}, id="integer enum dropped"),
    pytest.param({"enum": ["x", "y"]}, {"type": "STRING", "enum": ["x", "y"]}, id="untyped string enum"),
    pytest.param(
        {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "ghost", "a", 3]},
        {"type": "OBJECT", "properties": {"a": {"type": "STRING"}}, "required": ["a"]},
        id="required filtered to properties",
    ),
    pytest.param(
        {"type": "object", "properties": {}, "required": ["a"]},
        {"type": "OBJECT"},
        id="empty properties and dangling required left out",
    ),
    pytest.param(
        {"properties": {"a": {"type": "boolean"}}},
        {"type": "OBJECT", "properties": {"a": {"type": "BOOLEAN"}}},
        id="object type inferred from properties",
    ),
    pytest.param(
        {"items": {"type": "string"}}, {"type": "ARRAY", "items": {"type": "STRING"}}, id="array inferred"
    ),
    pytest.param(
        {"type": "string", "properties": {"a": {}}, "items": {}, "minimum": 1, "minItems": 1},
        {"type": "STRING"},
        id="keywords of other types dropped",
    ),
    pytest.param(
        {
            "type": "string",
            "title": "T",
            "description": "D",
            "default": "x",
            "example": "y",
            "examples": ["z"],
            "pattern": "^a",
            "readOnly": True,
            "deprecated": True,
            "$comment": "c",
            "$id": "urn:x",
            "not": {"type": "null"},
            "if": {},
            "then": {},
            "else": {},
            "contentEncoding": "base64",
        },
        {"type": "STRING", "title": "T", "description": "D", "default": "x", "example": "y", "pattern": "^a"},
        id="annotations kept, the rest dropped",
    ),
    pytest.param(
        {"type": "object", "properties": {"a": {}, "b": {}}, "propertyOrdering": ["b", "a"]},
        {"type": "OBJECT", "properties": {"a": {}, "b": {}}, "propertyOrdering": ["b", "a"]},
        id="propertyOrdering kept",
    ),
    pytest.param(True, {}, id="true schema"),
    pytest.param(False, {}, id="false schema"),
    pytest.param({"type": "whatever"}, {}, id="unknown type"),
]


@pytest.mark.parametrize(("schema", "expected"), CASES)
def test_keyword_table(schema: Any, expected: dict[str, Any]) -> None:
    before = copy.deepcopy(schema)
    assert to_gemini_schema(schema) == expected
    assert schema == before, "the input is never modified"


# --- references ---------------------------------------------------------------------------------------------


def test_defs_and_definitions_are_inlined_with_the_description_next_to_the_ref() -> None:
    schema = {
        "type": "object",
        "properties": {
            "where": {"$ref": "#/$defs/Place", "description": "the target"},
            "when": {"$ref": "#/definitions/When"},
            "odd/name": {"$ref": "#/$defs/odd~1name"},
        },
        "$defs": {
            "Place": {"type": "object", "description": "a place", "properties": {"city": {"type": "string"}}},
            "odd/name": {"type": "boolean"},
        },
        "definitions": {"When": {"type": "string", "format": "date-time"}},
    }
    assert to_gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "where": {
                "description": "the target",
                "type": "OBJECT",
                "properties": {"city": {"type": "STRING"}},
            },
            "when": {"type": "STRING", "format": "date-time"},
            "odd/name": {"type": "BOOLEAN"},
        },
    }


def test_recursive_references_end_in_an_unconstrained_value() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                    "parent": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
                },
            }
        },
    }
    assert to_gemini_schema(schema) == {
        "type": "OBJECT",
        "properties": {
            "name": {"type": "STRING"},
            "children": {"type": "ARRAY", "items": {}},
            "parent": {},
        },
    }


def test_root_self_reference_and_chained_references() -> None:
    schema = {
        "type": "object",
        "properties": {"self": {"$ref": "#"}, "alias": {"$ref": "#/$defs/A"}},
        "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"type": "integer"}},
    }
    assert to_gemini_schema(schema)["properties"] == {"self": {}, "alias": {"type": "INTEGER"}}


@pytest.mark.parametrize(
    "ref", ["https://example.com/schema.json", "#/$defs/Missing", "#/$defs/list/7", "other.json#/x", "#/type"]
)
def test_unresolvable_references_become_unconstrained(ref: str) -> None:
    schema = {
        "properties": {"x": {"$ref": ref, "description": "kept"}},
        "$defs": {"list": [1]},
        "type": "object",
    }
    assert to_gemini_schema(schema)["properties"] == {"x": {"description": "kept"}}


def test_references_inside_allof_and_list_pointers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "x": {"allOf": [{"$ref": "#/$defs/Base"}, {"properties": {"extra": {"type": "boolean"}}}]},
            "y": {"$ref": "#/$defs/Options/anyOf/1"},
        },
        "$defs": {
            "Base": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]},
            "Options": {"anyOf": [{"type": "string"}, {"type": "number", "minimum": 0}]},
        },
    }
    assert to_gemini_schema(schema)["properties"] == {
        "x": {
            "type": "OBJECT",
            "properties": {"id": {"type": "INTEGER"}, "extra": {"type": "BOOLEAN"}},
            "required": ["id"],
        },
        "y": {"type": "NUMBER", "minimum": 0},
    }


def test_pathological_depth_is_cut_without_recursion_errors() -> None:
    deep: dict[str, Any] = {"type": "string"}
    for _ in range(3000):
        deep = {"type": "object", "properties": {"n": deep}}
    out = to_gemini_schema(deep)
    depth = 0
    while "properties" in out:
        out = out["properties"]["n"]
        depth += 1
    assert out == {} and depth <= MAX_DEPTH + 1
    nested_all_of: dict[str, Any] = {"type": "integer"}
    for _ in range(3000):
        nested_all_of = {"allOf": [nested_all_of]}
    assert_gemini_schema(to_gemini_schema(nested_all_of))


# --- function parameters ------------------------------------------------------------------------------------


def test_function_parameters_is_an_object_or_nothing() -> None:
    assert function_parameters({"type": "object", "properties": {}}) is None
    assert function_parameters({"type": "object"}) is None
    assert function_parameters(None) is None
    assert function_parameters({"type": "object", "additionalProperties": {"type": "string"}}) is None
    assert function_parameters(
        {
            "type": ["object", "null"],
            "description": "args",
            "properties": {"q": {"type": "string"}},
            "required": ["q"],
            "additionalProperties": False,
        }
    ) == {
        "type": "OBJECT",
        "properties": {"q": {"type": "STRING"}},
        "required": ["q"],
        "description": "args",
    }


def test_a_claude_code_tool_schema() -> None:
    """The shape Claude Code's own tools use (zod-generated, draft-07)."""
    schema = {
        "type": "object",
        "properties": {
            "todos": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "content": {"type": "string", "minLength": 1},
                        "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
                        "id": {"type": "string"},
                    },
                    "required": ["content", "status", "id"],
                    "additionalProperties": False,
                },
                "description": "The updated todo list",
            },
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 600000},
        },
        "required": ["todos"],
        "additionalProperties": False,
        "$schema": "http://json-schema.org/draft-07/schema#",
    }
    params = function_parameters(schema)
    assert params is not None
    assert_gemini_schema(params)
    assert params["properties"]["todos"]["items"]["properties"]["status"] == {
        "type": "STRING",
        "enum": ["pending", "in_progress", "completed"],
    }
    assert params["properties"]["timeout"] == {"type": "NUMBER", "minimum": 0, "maximum": 600000}


# --- whatever goes in ---------------------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c", "$ref", "items", "type"])
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3)
)
_type_names = st.sampled_from(["string", "number", "integer", "boolean", "array", "object", "null", "bogus"])


def _schemas() -> st.SearchStrategy[Any]:
    keyword_values: dict[str, st.SearchStrategy[Any]] = {
        "type": st.one_of(_type_names, st.lists(_type_names, max_size=4)),
        "enum": st.lists(_scalars, max_size=4),
        "const": _scalars,
        "format": st.sampled_from(["date-time", "uri", "int64", "float", "enum"]),
        "minimum": _scalars,
        "exclusiveMaximum": _scalars,
        "minItems": _scalars,
        "maxLength": _scalars,
        "required": st.lists(_names, max_size=3),
        "nullable": _scalars,
        "$ref": st.sampled_from(["#", "#/$defs/a", "#/$defs/b", "#/properties/a", "#/nope", "http://x"]),
        "description": _scalars,
        "default": _scalars,
        "additionalProperties": st.booleans(),
        "multipleOf": _scalars,
    }

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        nested: dict[str, st.SearchStrategy[Any]] = {
            "properties": st.dictionaries(_names, children, max_size=3),
            "items": st.one_of(children, st.lists(children, max_size=2)),
            "prefixItems": st.lists(children, max_size=2),
            "anyOf": st.lists(children, max_size=3),
            "oneOf": st.lists(children, max_size=3),
            "allOf": st.lists(children, max_size=2),
            "$defs": st.dictionaries(st.sampled_from(["a", "b"]), children, max_size=2),
        }
        return st.fixed_dictionaries({}, optional={**keyword_values, **nested})

    leaves = st.one_of(st.booleans(), st.fixed_dictionaries({}, optional=keyword_values))
    return st.recursive(leaves, extend, max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(schema=_schemas())
def test_any_input_gives_a_schema_gemini_accepts(schema: Any) -> None:
    before = copy.deepcopy(schema)
    out = to_gemini_schema(schema)
    assert_gemini_schema(out)
    params = function_parameters(schema)
    if params is not None:
        assert_gemini_schema(params)
        assert params["type"] == "OBJECT" and params["properties"]
    assert schema == before
