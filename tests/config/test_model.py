"""The immutable snapshot: frozen containers, frozen dataclasses, provider lookup."""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from ccr_fast.config import Config, FrozenDict, FrozenList, ProviderConfig, config_from_dict
from ccr_fast.config.model import available_cpus, freeze, thaw


def make_provider(name: str, models: tuple[str, ...] = ()) -> ProviderConfig:
    return ProviderConfig(
        name=name,
        api_base_url="https://x.test/v1/chat/completions",
        api_key="k",
        models=models,
        transformer=FrozenDict(),
        tokenizer=FrozenDict(),
        raw=FrozenDict({"name": name}),
    )


# --- frozen containers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.__setitem__("a", 2),
        lambda d: d.__delitem__("a"),
        lambda d: d.update(b=1),
        lambda d: d.setdefault("b", 1),
        lambda d: d.pop("a"),
        lambda d: d.popitem(),
        lambda d: d.clear(),
        lambda d: d.__ior__({"b": 1}),
    ],
)
def test_frozen_dict_refuses_every_mutation(mutate: Callable[[FrozenDict], Any]) -> None:
    d = FrozenDict({"a": 1})
    with pytest.raises(TypeError, match="read-only"):
        mutate(d)
    assert d == {"a": 1}


@pytest.mark.parametrize(
    "mutate",
    [
        lambda v: v.__setitem__(0, 9),
        lambda v: v.__delitem__(0),
        lambda v: v.__iadd__([3]),
        lambda v: v.__imul__(2),
        lambda v: v.append(3),
        lambda v: v.extend([3]),
        lambda v: v.insert(0, 3),
        lambda v: v.pop(),
        lambda v: v.remove(1),
        lambda v: v.clear(),
        lambda v: v.reverse(),
        lambda v: v.sort(),
    ],
)
def test_frozen_list_refuses_every_mutation(mutate: Callable[[FrozenList], Any]) -> None:
    v = FrozenList([2, 1])
    with pytest.raises(TypeError, match="read-only"):
        mutate(v)
    assert v == [2, 1]


def test_freeze_is_deep_and_keeps_json_types() -> None:
    frozen = freeze({"a": [1, {"b": ("x", None)}], "c": {"d": True}})
    assert isinstance(frozen, dict) and isinstance(frozen, FrozenDict)
    assert isinstance(frozen["a"], list) and isinstance(frozen["a"], FrozenList)
    assert isinstance(frozen["a"][1], FrozenDict)
    assert isinstance(frozen["a"][1]["b"], FrozenList)
    assert frozen == {"a": [1, {"b": ["x", None]}], "c": {"d": True}}


def test_frozen_containers_serialise_with_orjson_and_json() -> None:
    frozen = freeze({"a": [1, {"b": "c"}]})
    assert orjson.loads(orjson.dumps(frozen)) == {"a": [1, {"b": "c"}]}
    assert json.loads(json.dumps(frozen)) == {"a": [1, {"b": "c"}]}


def test_frozen_containers_survive_pickle() -> None:
    frozen = freeze({"a": [1, {"b": "c"}]})
    restored = pickle.loads(pickle.dumps(frozen))
    assert restored == frozen
    assert isinstance(restored, FrozenDict) and isinstance(restored["a"], FrozenList)


def test_copies_are_plain_and_mutable() -> None:
    frozen = freeze({"a": [1, {"b": "c"}]})
    shallow = copy.copy(frozen)
    assert type(shallow) is dict and shallow == frozen
    assert type(copy.copy(frozen["a"])) is list
    deep = copy.deepcopy(frozen)
    assert type(deep) is dict and type(deep["a"]) is list and type(deep["a"][1]) is dict
    deep["a"][1]["b"] = "changed"
    assert frozen["a"][1]["b"] == "c"
    assert thaw(frozen) == deep | {"a": [1, {"b": "c"}]}
    assert type(thaw(frozen)["a"][1]) is dict


def test_merging_into_a_plain_dict_gives_a_mutable_result() -> None:
    options = freeze({"provider": {"only": ["anthropic"]}})
    body = {"model": "m", **options}
    body["extra"] = 1
    assert orjson.loads(orjson.dumps(body)) == {"model": "m", "provider": {"only": ["anthropic"]}, "extra": 1}


# --- dataclasses -----------------------------------------------------------------------------------------


def test_config_and_its_parts_are_frozen() -> None:
    config = config_from_dict(
        {
            "Providers": [
                {"name": "p", "api_base_url": "https://x.test/v1", "api_key": "k", "models": ["m"]}
            ],
            "Router": {"default": "p,m"},
        },
        env={},
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.providers[0].api_key = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.router.default = "q,m"  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.raw["PORT"] = 1
    with pytest.raises(TypeError):
        config.raw["Providers"][0]["models"].append("n")


def test_provider_parts_are_the_frozen_raw_objects_not_copies() -> None:
    spec = {"use": ["deepseek"], "deepseek-chat": {"use": ["tooluse"]}}
    entry = {"name": "p", "api_base_url": "https://x.test/v1", "api_key": "k", "transformer": spec}
    config = config_from_dict({"Providers": [entry], "Router": {"default": "p,m"}}, env={})
    assert config.providers[0].transformer is config.raw["Providers"][0]["transformer"]
    assert config.providers[0].raw is config.raw["Providers"][0]
    assert config.router.raw is config.raw["Router"]


def test_default_config_matches_ccrs_defaults() -> None:
    config = Config()
    assert (config.port, config.host, config.log, config.api_timeout_ms) == (3456, "127.0.0.1", True, 600000)
    assert config.workers == available_cpus() >= 1
    assert config.provider("anything") is None


# --- provider lookup -------------------------------------------------------------------------------------


def test_provider_lookup_is_exact_first_then_ignores_case() -> None:
    upper, lower = make_provider("DeepSeek"), make_provider("deepseek")
    config = Config(providers=(upper, lower, make_provider("groq")))
    assert config.provider("DeepSeek") is upper
    assert config.provider("deepseek") is lower
    assert config.provider("DEEPSEEK") is upper  # the first one wins among case-insensitive matches
    assert config.provider("GROQ") is config.providers[2]
    assert config.provider("openai") is None


def test_provider_lookup_index_is_not_part_of_equality() -> None:
    providers = (make_provider("a"),)
    assert Config(providers=providers, workers=1) == Config(providers=providers, workers=1)


def test_provider_lists_model() -> None:
    assert make_provider("p", ("m",)).lists("m")
    assert not make_provider("p", ("m",)).lists("n")
    assert make_provider("p").lists("anything")  # no list: any model
