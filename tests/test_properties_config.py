"""Property-based tests of TrainConfig validation: whatever dict arrives (from a JSON file, a
checkpoint or a notebook), from_dict either returns a config that round-trips unchanged or
raises ConfigError naming the field; it never fails with another exception."""

from __future__ import annotations

import dataclasses
import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from ssd_lib.config import PRESETS, PROFILES, ConfigError, TrainConfig, make_config

FIELDS = [f.name for f in dataclasses.fields(TrainConfig)]
# Small and fast: the file runs in a few seconds; no example database is written.
SETTINGS = settings(max_examples=100, deadline=None, database=None)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities included: Python's json reads and writes them
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
# Values a field could plausibly hold, so that many generated dicts are valid configs.
plausible = st.sampled_from(
    [
        v
        for c in (make_config(p, q) for p in PRESETS for q in PROFILES)
        for v in c.to_dict().values()
    ]
)
field_names = st.sampled_from(FIELDS) | st.text(max_size=12)  # real names and unknown ones


@st.composite
def config_dicts(draw) -> dict:
    """A preset's dict with some fields dropped, others set to arbitrary JSON-able values, and
    perhaps unknown fields added."""
    base = make_config(draw(st.sampled_from(list(PRESETS))), "smoke").to_dict()
    keep = draw(st.sets(st.sampled_from(FIELDS)))
    changes = draw(st.dictionaries(field_names, plausible | json_values, max_size=4))
    return {**{k: v for k, v in base.items() if k in keep}, **changes}


@SETTINGS
@given(config_dicts())
def test_from_dict_round_trips_or_raises_config_error(d):
    try:
        c = TrainConfig.from_dict(d)
    except ConfigError as err:
        assert "\n" not in str(err)
        return
    again = TrainConfig.from_dict(c.to_dict())
    assert again == c and again.to_dict() == c.to_dict()
    from_json = TrainConfig.from_dict(json.loads(c.to_json()))
    assert from_json == c and from_json.config_hash() == c.config_hash()


# Per numeric field, values outside what it allows (types that are not numbers included).
non_integral = st.floats().filter(lambda x: not x.is_integer()) | st.booleans() | st.text()
positive_int = st.integers(max_value=0) | non_integral
OUT_OF_RANGE = {
    **dict.fromkeys(
        ["nz", "ngf", "ndf", "mapping_layers", "batch_size", "epochs"]
        + ["spectral_every", "sample_count"],
        positive_int,
    ),
    "max_steps": st.integers(max_value=-1) | non_integral,
    "checkpoint_every": st.integers(max_value=-1) | non_integral,
    "seed": st.integers(max_value=-1) | st.integers(min_value=2**32) | non_integral,
    **dict.fromkeys(
        ["lr_g", "lr_d", "gp_weight", "d_loss_scale", "stylegan_width"],
        st.floats(max_value=0.0)
        | st.floats(min_value=1000.0, exclude_min=True)
        | st.just(math.nan)
        | st.booleans(),
    ),
    "data_fraction": st.floats(max_value=0.0)
    | st.floats(min_value=1.0, exclude_min=True)
    | st.just(math.nan),
    "betas": st.tuples(
        st.floats(min_value=0.0, max_value=0.999),
        st.floats(max_value=0.0, exclude_max=True) | st.floats(min_value=1.0) | st.just(math.nan),
    ).map(lambda t: list(t) if t[0] < 0.5 else [t[1], t[0]])
    | st.lists(st.floats(min_value=0.0, max_value=0.9), min_size=3, max_size=4),
}


@SETTINGS
@given(
    preset=st.sampled_from(list(PRESETS)),
    field_and_value=st.sampled_from(list(OUT_OF_RANGE)).flatmap(
        lambda f: st.tuples(st.just(f), OUT_OF_RANGE[f])
    ),
)
def test_out_of_range_numbers_are_refused_naming_the_field(preset, field_and_value):
    field, value = field_and_value
    d = {**make_config(preset, "smoke").to_dict(), field: value}
    try:
        TrainConfig.from_dict(d)
    except ConfigError as err:
        assert f"TrainConfig.{field}=" in str(err) and "allowed:" in str(err)
    else:
        raise AssertionError(f"{field}={value!r} was accepted")


@SETTINGS
@given(name=json_values.filter(lambda v: not (isinstance(v, str) and v in PRESETS)))
def test_an_unknown_preset_lists_the_known_ones(name):
    for call in (lambda: make_config(name), lambda: TrainConfig.from_dict({"preset": name})):
        try:
            call()
        except ConfigError as err:
            assert all(repr(p) in str(err) for p in PRESETS)
        else:
            raise AssertionError(f"preset {name!r} was accepted")


@SETTINGS
@given(name=json_values.filter(lambda v: not (isinstance(v, str) and v in PROFILES)))
def test_an_unknown_profile_lists_the_known_ones(name):
    for call in (lambda: make_config("paper", name), lambda: make_config().replace(profile=name)):
        try:
            call()
        except ConfigError as err:
            assert all(repr(p) in str(err) for p in PROFILES)
        else:
            raise AssertionError(f"profile {name!r} was accepted")
