"""CCR-compatible configuration: JSON5 with environment interpolation, checked into an immutable snapshot."""

from ccr_fast.config.demo import demo_config
from ccr_fast.config.errors import ConfigError, Problem
from ccr_fast.config.loader import (
    config_dir,
    config_from_dict,
    default_config_path,
    interpolate,
    load_config,
    parse_config,
)
from ccr_fast.config.model import ApiKey, Config, FrozenDict, FrozenList, ProviderConfig, RouterConfig, thaw
from ccr_fast.config.redact import redact

__all__ = [
    "ApiKey",
    "Config",
    "ConfigError",
    "FrozenDict",
    "FrozenList",
    "Problem",
    "ProviderConfig",
    "RouterConfig",
    "config_dir",
    "config_from_dict",
    "default_config_path",
    "demo_config",
    "interpolate",
    "load_config",
    "parse_config",
    "redact",
    "thaw",
]
