"""Per-feature configs: each is the benchmark's config plus one feature, and ccr-fast accepts it."""

from __future__ import annotations

import pytest
from bench.features import API_KEY, FEATURES, feature_config
from bench.scenarios import gateway_config

from ccr_fast.admission.config import AdmissionConfig
from ccr_fast.config import config_from_dict
from ccr_fast.state.redis_backend import from_config as redis_from_config

BASE = gateway_config({"fast": 1001, "stream50": 1002, "paced": 1003}, 1004)
REDIS_URL = "redis://127.0.0.1:6390/0"


@pytest.mark.parametrize("feature", list(FEATURES))
def test_every_variant_is_a_valid_ccr_fast_config(feature: str) -> None:
    raw = feature_config(BASE, feature, redis_url=REDIS_URL)
    config = config_from_dict(raw)
    assert config.warnings == ()
    admission = AdmissionConfig.from_config(raw)
    assert admission.warnings == ()
    assert BASE.get("APIKEY") is None and "RateLimit" not in BASE  # the base is left alone


def test_each_variant_switches_on_its_feature_only() -> None:
    off = feature_config(BASE, "off")
    assert off == BASE
    assert not AdmissionConfig.from_config(off).enabled

    auth = feature_config(BASE, "auth")
    assert config_from_dict(auth).apikey == API_KEY
    assert "RateLimit" not in auth

    limits = feature_config(BASE, "rate_limit")
    admission = AdmissionConfig.from_config(limits)
    assert admission.enabled
    assert "APIKEY" not in limits and "State" not in limits
    # generous: far above anything the benchmark sends, so nothing is refused
    assert all(rate.per_second >= 1000 for rate in admission.rate_limit.global_limits.requests)

    redis = feature_config(BASE, "redis", redis_url=REDIS_URL)
    settings = redis_from_config(redis["State"])
    assert settings is not None and settings.url == REDIS_URL and settings.lease_size == 1
    assert redis["RateLimit"]["global"]  # only the global limit goes to Redis


def test_bad_requests_for_variants() -> None:
    with pytest.raises(ValueError, match="unknown feature"):
        feature_config(BASE, "cache")
    with pytest.raises(ValueError, match="redis_url"):
        feature_config(BASE, "redis")
