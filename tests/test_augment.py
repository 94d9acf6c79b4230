"""DiffAugment operations and the ADA controller for p."""

from __future__ import annotations

import json

import pytest
import torch

from ssd_lib.training.augment import (
    OPERATIONS,
    AdaptiveAugment,
    cutout,
    diff_augment,
    parse_policy,
    translation,
)


def _images(n: int = 6, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("policy", [*OPERATIONS, "color,translation,cutout"])
def test_augmentation_keeps_shape_dtype_and_range_and_passes_gradients(policy):
    x = _images().requires_grad_(True)
    y = diff_augment(x, 1.0, _gen(), policy)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert y.min() >= -1 and y.max() <= 1
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_colour_ops_leave_the_range_without_clamp():
    # A brightness shift of up to 0.5 pushes bright pixels past 1; clamp=True is what stops it.
    x = torch.full((32, 3, 4, 4), 0.9)
    y = diff_augment(x, 1.0, _gen(), "brightness", clamp=False)
    assert y.max() > 1
    assert diff_augment(x, 1.0, _gen(), "brightness").max() == 1


def test_half_precision_keeps_its_dtype():
    x = _images().half()
    assert diff_augment(x, 1.0, _gen()).dtype == torch.float16


def test_p_zero_returns_the_input_unchanged():
    x = _images()
    y = diff_augment(x, 0.0, _gen())
    assert torch.equal(y, x)
    assert AdaptiveAugment()(x, _gen()) is x  # p starts at 0


def test_same_seed_same_output_and_another_seed_differs():
    x = _images()
    a, b = diff_augment(x, 0.5, _gen(7)), diff_augment(x, 0.5, _gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, diff_augment(x, 0.5, _gen(8)))


def test_samples_not_drawn_keep_their_values_exactly():
    x = _images(n=64)
    y = diff_augment(x, 0.3, _gen(1), "brightness")
    unchanged = (y == x).flatten(1).all(dim=1)
    # Each sample is brightened with probability 0.3: 64 samples give about 45 untouched.
    assert 30 <= int(unchanged.sum()) <= 58


def test_translation_shifts_whole_pixels_and_fills_with_zeros():
    x = torch.arange(1.0, 65.0).view(1, 1, 8, 8).expand(50, 3, 8, 8)
    y = translation(x, _gen(2))  # up to 1 pixel (1/8 of 8) each way
    for img in y[:, 0]:
        nonzero = img[img != 0]
        # A shifted copy of the ramp: the surviving values are the originals, in order.
        assert set(nonzero.tolist()) <= set(range(1, 65))
        assert (img == 0).sum() in (0, 8, 15)  # nothing, one row/column, or both


def test_cutout_zeroes_at_most_a_half_size_square():
    x = torch.ones(40, 3, 16, 16)
    y = cutout(x, _gen(3))
    zeros = (y[:, 0] == 0).flatten(1).sum(dim=1)
    assert zeros.max() == 64  # an 8x8 square when it lies inside the image
    assert zeros.min() > 0 and (zeros <= 64).all()


def test_unknown_policy_and_bad_p_are_named():
    with pytest.raises(ValueError, match="names 'blur'"):
        parse_policy("color,blur")
    with pytest.raises(ValueError, match=r"p=1.5 is invalid; allowed: a number in \[0, 1\]"):
        diff_augment(_images(), 1.5, _gen())


def test_p_rises_for_an_overfitting_discriminator_and_falls_for_a_balanced_one():
    ada = AdaptiveAugment(target=0.6, interval=4, speed_images=1_000)
    confident = torch.full((10,), 5.0)  # logits: D is sure of every real, r_t = 1
    for _ in range(40):
        ada.observe(confident)
        ada.step()
    # 10 updates, each of +4 steps * 10 images / 1,000 images = 0.04.
    assert ada.p == pytest.approx(0.4)
    assert [r for _, _, r in ada.log] == [1.0] * 10
    balanced = torch.tensor([3.0, -3.0] * 5)  # r_t = 0 < 0.6
    for _ in range(200):
        ada.observe(balanced)
        ada.step()
    assert ada.p == 0.0  # clamped at 0, not negative
    assert ada.log[-1] == (240, 0.0, 0.0)


def test_probability_outputs_use_the_half_threshold():
    ada = AdaptiveAugment(interval=1, speed_images=100, threshold=0.5)
    ada.observe(torch.full((10,), 0.9))  # sigmoid outputs: all above 0.5
    assert ada.step() == pytest.approx(0.1)


def test_p_can_go_from_zero_to_one_in_speed_images():
    ada = AdaptiveAugment(interval=2, speed_images=512)
    steps = 0
    while ada.p < 1.0:
        ada.observe(torch.ones(32))
        ada.step()
        steps += 1
    assert steps * 32 == 512  # 8 updates of 2 * 32 / 512
    ada.observe(torch.ones(32))
    ada.step()
    ada.observe(torch.ones(32))
    assert ada.step() == 1.0  # clamped at 1


def test_state_dict_round_trips_through_json_mid_interval():
    ada = AdaptiveAugment(interval=3, speed_images=100)
    for value in [1.0, 1.0, 1.0, -1.0, 1.0]:  # one update, then two steps into the next
        ada.observe(torch.full((4,), value))
        ada.step()
    state = json.loads(json.dumps(ada.state_dict()))
    restored = AdaptiveAugment(interval=3, speed_images=100)
    restored.load_state_dict(state)
    assert restored.state_dict() == ada.state_dict()
    assert state["count"] == 8 and state["sign_sum"] == 0.0 and state["steps"] == 5
    for a in (ada, restored):  # both finish the interval alike
        a.observe(torch.ones(4))
        a.step()
    assert restored.state_dict() == ada.state_dict()
    assert restored.log[-1][0] == 6


def test_controller_rejects_bad_settings():
    with pytest.raises(ValueError, match="interval=0 is invalid"):
        AdaptiveAugment(interval=0)
    with pytest.raises(ValueError, match="target=1.5 is invalid"):
        AdaptiveAugment(target=1.5)
