"""Presets, profiles and validation of TrainConfig."""

from __future__ import annotations

import json

import pytest

from ssd_lib.config import (
    PRESETS,
    PROFILES,
    ConfigError,
    TrainConfig,
    describe_presets,
    make_config,
)


def test_paper_preset_is_the_releases_recipe():
    c = make_config("paper")
    assert (c.generator, c.discriminator, c.tied_mapping) == ("ssd", "sn", True)
    assert c.real_range == "[0, 1]" and c.step_order == "g_then_d" and c.d_loss_scale == 0.5
    assert (c.lr_g, c.lr_d, c.betas) == (5e-4, 5e-4, (0.5, 0.999))
    assert (c.batch_size, c.epochs, c.seed, c.loss) == (32, 20, 42, "bce")


def test_corrected_differs_from_paper_only_in_the_recipe_quirks():
    paper, corrected = make_config("paper").to_dict(), make_config("corrected").to_dict()
    changed = {k for k in paper if paper[k] != corrected[k]}
    assert changed == {"preset", "real_range", "step_order", "d_loss_scale"}
    assert corrected["real_range"] == "[-1, 1]" and corrected["step_order"] == "d_then_g"


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_has_a_one_line_description_and_round_trips_json(preset):
    description = PRESETS[preset][0]
    assert description and "\n" not in description
    c = make_config(preset, "smoke")
    assert TrainConfig.from_dict(json.loads(c.to_json())) == c
    assert preset in describe_presets()


def test_profiles_change_budget_not_recipe():
    paper, quick = make_config("paper", "paper"), make_config("paper", "quick")
    diff = {k for k, v in paper.to_dict().items() if quick.to_dict()[k] != v}
    assert diff <= {
        "profile",
        "epochs",
        "max_steps",
        "batch_size",
        "stylegan_width",
        "sample_count",
        "checkpoint_every",
    }
    assert set(PROFILES) >= {"paper", "quick", "smoke"}


def test_config_hash_is_stable_and_sensitive():
    a, b = make_config("paper"), make_config("paper")
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != make_config("paper", seed=1).config_hash()


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("lr_g", -1.0, "a number in (0, 1000]"),
        ("batch_size", 0, "an integer >= 1"),
        ("real_range", "[0, 255]", "one of ['[0, 1]', '[-1, 1]']"),
        ("data_fraction", 1.5, "a number in (0, 1]"),
        ("betas", (0.5, 1.2), "two numbers in [0, 1)"),
        ("precision", "fp8", "one of ['fp32', 'bf16', 'fp16', 'auto']"),
        ("tied_mapping", "yes", "True or False"),
        ("epochs", 2.5, "an integer >= 1"),
    ],
)
def test_invalid_values_name_the_field_the_value_and_the_allowed_range(field, value, allowed):
    with pytest.raises(ConfigError) as err:
        make_config("paper", **{field: value})
    msg = str(err.value)
    assert f"TrainConfig.{field}={value!r}" in msg and allowed in msg


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ConfigError, match=r"known presets: \['paper'"):
        make_config("papr")
    with pytest.raises(ConfigError, match="known profiles"):
        make_config("paper", "huge")
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['lr'\]"):
        make_config("paper", lr=0.1)
    with pytest.raises(ConfigError, match="unknown config field"):
        TrainConfig.from_dict({**make_config().to_dict(), "extra": 1})


def test_impossible_combinations_are_refused():
    with pytest.raises(ConfigError, match="'wgan_gp' for the StyleGAN discriminator"):
        make_config("stylegan", loss="bce")
    with pytest.raises(ConfigError, match="data_fraction=True"):
        make_config("paper", data_fraction=True)
    with pytest.raises(ConfigError, match="betas=0.5"):
        make_config("paper", betas=0.5)
    with pytest.raises(ConfigError, match="discriminator"):
        make_config("paper", discriminator="stylegan")
    with pytest.raises(ConfigError, match="loss"):
        make_config("paper", loss="wgan_gp")


def test_from_json_file_reads_a_saved_config(tmp_path):
    c = make_config("no_sn", "quick", seed=7)
    path = tmp_path / "config.json"
    path.write_text(c.to_json())
    assert TrainConfig.from_json_file(path) == c


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"config file .*config\.json does not exist"),
        ('{"seed": 1,', r"config file .*config\.json is not valid JSON: Expecting"),
        ('{"seed": 1, "seed": 2}', r"is not valid JSON: duplicate key\(s\) \['seed'\]"),
        ("[1, 2]", r"config file .*config\.json: a config must be a dict of fields, got list"),
        ('{"lr": 0.1}', r"config file .*config\.json: unknown config field\(s\) \['lr'\]"),
        ('{"epochs": "20"}', r"config\.json: TrainConfig\.epochs='20' is invalid; allowed: an int"),
        (b"\xff\xfe{", r"config file .*config\.json cannot be read"),
    ],
)
def test_from_json_file_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / "config.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        TrainConfig.from_json_file(path)


def test_replace_and_from_dict_refuse_unknown_fields_and_non_dicts():
    c = make_config()
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['lr'\]"):
        c.replace(lr=0.1)
    assert c.replace(seed=3).seed == 3
    with pytest.raises(ConfigError, match="a config must be a dict of fields, got str"):
        TrainConfig.from_dict("paper")
    with pytest.raises(ConfigError, match=r"unknown config field\(s\) \['x', 1\]"):
        TrainConfig.from_dict({1: 2, "x": 3})  # mixed key types: sorted by repr


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("seed", 2**32, "an integer in [0, 2**32 - 1]"),
        ("seed", -1, "an integer in [0, 2**32 - 1]"),
        ("preset", ["paper"], "one of ['paper'"),
        ("profile", {"quick": 1}, "one of ['paper'"),
        ("generator", ["ssd"], "one of ['ssd'"),
        ("betas", {0.5: 0, 0.9: 0}, "two numbers in [0, 1)"),
        ("betas", "ab", "two numbers in [0, 1)"),
        ("lr_g", float("nan"), "a number in (0, 1000]"),
        ("data_fraction", float("inf"), "a number in (0, 1]"),
    ],
)
def test_wrong_types_and_unhashable_values_are_config_errors(field, value, allowed):
    with pytest.raises(ConfigError) as err:
        TrainConfig.from_dict({field: value})
    assert f"TrainConfig.{field}={value!r}" in str(err.value) and allowed in str(err.value)


def test_unhashable_preset_or_profile_names_list_the_known_ones():
    with pytest.raises(ConfigError, match=r"preset=\['paper'\] is unknown; known presets"):
        make_config(["paper"])
    with pytest.raises(ConfigError, match=r"profile=\{\} is unknown; known profiles"):
        make_config("paper", {})


def test_equal_configs_hash_alike_whether_numbers_are_ints_or_floats():
    a = make_config("paper", lr_g=1, d_loss_scale=1, betas=[0, 0.5])
    b = make_config("paper", lr_g=1.0, d_loss_scale=1.0, betas=(0.0, 0.5))
    assert a == b and a.config_hash() == b.config_hash()
    assert isinstance(a.lr_g, float) and a.betas == (0.0, 0.5)


# Hashes of every preset x profile as they were before the LATER_FIELDS existed: run folders
# are named after them, so published and half-trained runs must keep them.
HASHES_BEFORE_LATER_FIELDS = {
    "paper/paper": "b9166b5423",
    "paper/quick": "dea7e94177",
    "paper/smoke": "0e8b653a3a",
    "corrected/paper": "ee2fa277ac",
    "corrected/quick": "74a1457073",
    "corrected/smoke": "fcc1a123cf",
    "dcgan/paper": "0427842d26",
    "dcgan/quick": "7e554b51b2",
    "dcgan/smoke": "44b4dcd103",
    "no_sn/paper": "367bf4572f",
    "no_sn/quick": "75b80f230d",
    "no_sn/smoke": "a04647d6e3",
    "no_adain/paper": "a3c2c726ea",
    "no_adain/quick": "ae1e16e4d8",
    "no_adain/smoke": "3ca554d6bf",
    "stylegan/paper": "852202613f",
    "stylegan/quick": "20729cfa82",
    "stylegan/smoke": "ddff09cd0d",
}


def test_fields_added_later_leave_earlier_configs_hashes_alone():
    for key, expected in HASHES_BEFORE_LATER_FIELDS.items():
        preset, profile = key.split("/")
        # The smoke profile was at the paper's width (ngf = ndf = 64) when these were taken.
        width = {"ngf": 64, "ndf": 64} if profile == "smoke" else {}
        assert make_config(preset, profile, **width).config_hash() == expected, key


def test_later_fields_appear_in_the_json_only_when_set():
    from ssd_lib.config import LATER_FIELDS

    plain = make_config("paper").to_dict()
    assert not set(LATER_FIELDS) & set(plain)
    ada = make_config("ada")
    assert ada.to_dict()["augment"] == "ada" and ada.to_dict()["ada_speed_images"] == 20_000
    assert "ada_target" not in ada.to_dict()  # still at its default
    assert TrainConfig.from_dict(ada.to_dict()) == ada
    assert make_config("paper", augment_p=0.5).config_hash() != make_config("paper").config_hash()


def test_published_configs_read_back_to_the_same_json():
    import json
    from pathlib import Path

    published = Path(__file__).resolve().parents[1] / "published"
    files = sorted(published.glob("*/config.json"))
    assert files, "no published run configs"
    for path in files:
        stored = json.loads(path.read_text())
        assert TrainConfig.from_json_file(path).to_dict() == stored, path


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"augment": "mixup"}, "TrainConfig.augment='mixup' is invalid; allowed: one of"),
        ({"augment": "diffaugment"}, "'none' unless real_range='[-1, 1]'"),
        ({"augment_p": 1.5}, "TrainConfig.augment_p=1.5 is invalid; allowed: a number in [0, 1]"),
        ({"ada_target": 0}, "TrainConfig.ada_target=0 is invalid; allowed: a number in (0, 1]"),
        ({"ada_interval": 0}, "TrainConfig.ada_interval=0 is invalid; allowed: an integer >= 1"),
        ({"augment_policy": "color,rotate"}, "TrainConfig.augment_policy='color,rotate'"),
        ({"augment_policy": ""}, "TrainConfig.augment_policy=''"),
    ],
)
def test_augmentation_fields_are_validated(overrides, message):
    with pytest.raises(ConfigError) as err:
        make_config("paper", **overrides)
    assert message in str(err.value)
