"""One home for validation (ssd_lib.utils.validate), one seed range, one error base class."""

from __future__ import annotations

import importlib
import inspect

import numpy as np
import pytest
import torch
from conftest import project_module_names

from ssd_lib.config import ConfigError, make_config
from ssd_lib.generation.sampling import sample_z
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.validate import (
    MAX_SEED,
    check_int,
    check_psi,
    check_real,
    check_seed,
)


def _project_modules():
    return [importlib.import_module(name) for name in project_module_names()]


def test_every_project_exception_derives_from_ssd_error():
    outside = []
    for module in _project_modules():
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not issubclass(obj, SSDError)
            ):
                outside.append(f"{module.__name__}.{name}")
    # A stop the user asked for is not an error: it stays a KeyboardInterrupt only.
    assert outside == ["ssd_lib.experiments.suite.TrainingInterrupted"]


def test_one_seed_constant():
    """MAX_SEED is defined once; a module that uses it imports that one."""
    defining = [
        m.__name__
        for m in _project_modules()
        if any(line.startswith("MAX_SEED =") for line in inspect.getsource(m).splitlines())
    ]
    assert defining == ["ssd_lib.utils.validate"], defining
    users = [m for m in _project_modules() if "MAX_SEED" in vars(m)]
    assert users and all(vars(m)["MAX_SEED"] == MAX_SEED for m in users)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        (0, True),
        (MAX_SEED, True),
        (np.int64(7), True),
        (-1, False),
        (MAX_SEED + 1, False),
        (True, False),
        (1.0, False),
        ("3", False),
    ],
)
def test_the_seed_range_is_the_same_for_configs_sampling_and_checks(value, ok):
    if ok:
        assert check_seed("seed", value) == int(value)
        make_config("paper", seed=int(value))
        assert sample_z(1, 4, int(value)).shape == (1, 4)
        return
    with pytest.raises(
        ValueError, match=r"seed=.* is invalid; allowed: an integer in \[0, 2\*\*32 - 1\]"
    ):
        check_seed("seed", value)
    with pytest.raises(ConfigError, match=r"TrainConfig\.seed=.*2\*\*32 - 1"):
        make_config("paper", seed=value)
    with pytest.raises(ValueError, match="seed="):
        sample_z(1, 4, value)


def test_checks_convert_and_name_the_bad_value():
    assert check_int("n", np.int32(3)) == 3 and type(check_int("n", np.int32(3))) is int
    assert check_real("lr", 1) == 1.0 and check_psi(0.5) == 0.5
    with pytest.raises(ValueError, match=r"^n=0 is invalid; allowed: an integer >= 1$"):
        check_int("n", 0)
    with pytest.raises(ValueError, match=r"^k=2 is invalid; allowed: an integer >= 3$"):
        check_int("k", 2, 3)
    with pytest.raises(ValueError, match=r"^x=nan is invalid; allowed: a finite number$"):
        check_real("x", float("nan"))
    with pytest.raises(ValueError, match=r"truncation_psi=2\.5 .* in \[0, 2\]"):
        check_psi(2.5)
    with pytest.raises(ConfigError):  # the caller's own error class
        check_int("TrainConfig.epochs", 0, error=ConfigError)


def test_optional_values_and_open_intervals():
    assert check_seed("mix_seed", None, optional=True) is None
    assert check_int("k", 3, optional=True) == 3
    with pytest.raises(
        ValueError, match=r"^mix_seed=-3 is invalid; .*2\*\*32 - 1\] or None \(off\)$"
    ):
        check_seed("mix_seed", -3, optional=True)
    with pytest.raises(ValueError, match=r"^seed=None is invalid"):
        check_seed("seed", None)
    assert check_real("p", 1, 0, 1, low_open=True) == 1.0
    assert check_real("p", 0, 0, 1, high_open=True) == 0.0
    for value, kwargs, allowed in (
        (0, {"low_open": True}, r"\(0, 1\]"),
        (1, {"high_open": True}, r"\[0, 1\)"),
        (1, {"low_open": True, "high_open": True}, r"\(0, 1\)"),
        (float("inf"), {}, r"\[0, 1\]"),
    ):
        with pytest.raises(
            ValueError, match=rf"^p={value!r} is invalid; allowed: a number in {allowed}$"
        ):
            check_real("p", value, 0, 1, **kwargs)


def test_configs_store_numbers_as_python_ints_and_floats():
    """A NumPy integer or an int where a float is meant gives the same config and hash."""
    c = make_config("paper", epochs=np.int64(3), lr_g=1, seed=np.uint32(5))
    assert type(c.epochs) is int and type(c.lr_g) is float and type(c.seed) is int
    assert c.config_hash() == make_config("paper", epochs=3, lr_g=1.0, seed=5).config_hash()


def test_truncation_checks_psi_through_the_shared_check():
    from ssd_lib.models import build_generator

    g = build_generator(make_config("paper"))
    ws = torch.zeros(1, g.num_ws, 100)
    with pytest.raises(
        ValueError, match=r"^truncation_psi=-0\.1 is invalid; allowed: a number in \[0, 2\]"
    ):
        g.truncate(ws, -0.1)
    assert torch.equal(g.truncate(ws, 1.0), ws)


def test_a_bad_value_is_an_ssd_error_and_a_value_error():
    with pytest.raises(SSDError) as err:
        check_int("n", 0)
    assert isinstance(err.value, ValueError)


def test_the_fault_policy_names_a_bad_option():
    from ssd_lib.training.health import FaultPolicy

    assert FaultPolicy().action == "stop" and not FaultPolicy().rolls_back
    assert FaultPolicy("rollback", 0.25, 2).rolls_back
    for args, match in (
        (("retry",), r"on_nonfinite='retry' is invalid; allowed: one of \['stop', 'rollback'\]"),
        (("rollback", 1.0), r"rollback_lr_factor=1\.0 is invalid; allowed: a number in \(0, 1\)"),
        (("rollback", 0.5, 0), r"max_rollbacks=0 is invalid; allowed: an integer >= 1"),
    ):
        with pytest.raises(ValueError, match=match):
            FaultPolicy(*args)
