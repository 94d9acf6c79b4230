"""Importing the authors' Lightning checkpoint: weights arrive intact, pickles never run."""

from __future__ import annotations

import io
import os
import pickle

import pytest
import torch

from ssd_lib.config import make_config
from ssd_lib.models import build_discriminator, build_generator
from ssd_lib.training.release_import import (
    ReleaseImportError,
    import_release_checkpoint,
    load_release_state_dict,
)


def paper_networks(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    cfg = make_config("paper")
    g, d = build_generator(cfg), build_discriminator(cfg)
    d(torch.randn(4, 3, 64, 64))  # one SN power iteration and BN update: non-default buffers
    return g, d


def lightning_checkpoint(state_dict: dict[str, torch.Tensor]) -> dict:
    """What Lightning's trainer.save_checkpoint writes around a state dict (plain types only)."""
    return {
        "epoch": 19,
        "global_step": 2960,
        "pytorch-lightning_version": "2.0.0",
        "state_dict": state_dict,
        "loops": {"fit_loop": {"epoch_progress": {"current": {"completed": 19}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'g_loss'}": {"best_model_score": 1.25}},
        "optimizer_states": [
            {
                "state": {0: {"step": torch.tensor(2960.0), "exp_avg": torch.zeros(3)}},
                "param_groups": [{"lr": 5e-4, "betas": (0.5, 0.999), "params": [0]}],
            },
        ],
        "lr_schedulers": [],
        "hyper_parameters": {"lr": 5e-4, "batch_size": 32, "nz": 100, "name": "ssd"},
    }


def renamed(state: dict[str, torch.Tensor], prefix: str, scramble: bool) -> dict:
    """Our state dict under another attribute name; ``scramble`` also renames every layer
    (as an unknown release would) and drops our ``w_avg``, which the release does not have."""
    if not scramble:
        return {f"{prefix}.{k}": v.clone() for k, v in state.items()}
    items = [(k, v) for k, v in state.items() if k != "w_avg"]
    return {
        f"{prefix}.layer{i}.{k.rsplit('.', 1)[-1]}": v.clone() for i, (k, v) in enumerate(items)
    }


def assert_same_weights(net: torch.nn.Module, original: torch.nn.Module, skip=()) -> None:
    ours, theirs = net.state_dict(), original.state_dict()
    assert ours.keys() == theirs.keys()
    for k in ours:
        if k not in skip:
            torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0, msg=k)


def test_a_lightning_checkpoint_with_our_names_imports_every_weight_exactly(tmp_path):
    g, d = paper_networks()
    state = {
        **renamed(g.state_dict(), "generator", False),
        **renamed(d.state_dict(), "discriminator", False),
    }
    path = tmp_path / "release.ckpt"
    torch.save(lightning_checkpoint(state), path)
    g2, d2 = import_release_checkpoint(path)
    assert_same_weights(g2, g)  # w_avg included: it was in the file
    assert_same_weights(d2, d)
    assert not g2.training and not d2.training
    z = torch.randn(3, 100)
    torch.testing.assert_close(g2(z), g.eval()(z))


def test_unknown_layer_names_are_matched_by_prefix_order_and_shape(tmp_path):
    g, d = paper_networks(1)
    # Attribute names the release might use, listed D first, with made-up layer names.
    state = {**renamed(d.state_dict(), "netD", True), **renamed(g.state_dict(), "netG", True)}
    # Group the tensors by shape: the order across shapes changes, within a shape it does not
    # (as when a release registers conv, norm, conv, norm instead of all convs first).
    by_shape = sorted(state.items(), key=lambda kv: (kv[0].split(".")[0], tuple(kv[1].shape)))
    path = tmp_path / "release.ckpt"
    torch.save(lightning_checkpoint(dict(by_shape)), path)
    g2, d2 = import_release_checkpoint(path, w_avg_samples=1000)
    assert_same_weights(g2, g, skip={"w_avg"})
    assert_same_weights(d2, d)
    # w_avg was not in the file: it is the mean w of 1000 codes from seed 0.
    from ssd_lib.generation.sampling import sample_z

    with torch.no_grad():
        expected = g2.mapping(sample_z(1000, 100, 0)).mean(0)
    torch.testing.assert_close(g2.w_avg, expected)


def test_a_tied_mapping_saved_under_four_names_counts_once(tmp_path):
    g, d = paper_networks(2)
    gs = {k: v.clone() for k, v in g.state_dict().items() if k != "w_avg"}
    # One Linear listed four times in an nn.Sequential: four names, one storage.
    weight, bias = gs.pop("mapping.layers.0.weight"), gs.pop("mapping.layers.0.bias")
    tied = {
        f"generator.mapping.{i}.{name}": t
        for i in (0, 2, 4, 6)
        for name, t in (("weight", weight), ("bias", bias))
    }
    rest = {f"generator.{k}": v for k, v in gs.items()}
    state = {**tied, **rest, **renamed(d.state_dict(), "discriminator", True)}
    path = tmp_path / "release.ckpt"
    torch.save({"state_dict": state}, path)
    g2, _ = import_release_checkpoint(path)
    assert_same_weights(g2, g, skip={"w_avg"})


def test_a_checkpoint_that_does_not_fit_lists_the_unmatched_names_and_shapes(tmp_path):
    g, d = paper_networks()
    state = {
        **renamed(g.state_dict(), "generator", True),
        **renamed(d.state_dict(), "discriminator", True),
    }
    # layer3 is the first ConvT (after const, mapping weight and bias); make its kernel 4x3.
    assert state["generator.layer3.weight"].shape == (100, 512, 4, 4)
    state["generator.layer3.weight"] = torch.zeros(100, 512, 4, 3)
    path = tmp_path / "release.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(ReleaseImportError) as err:
        import_release_checkpoint(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg and "no prefix fits the generator" in msg
    assert "closest 'generator'" in msg
    assert "unmatched in the file ['layer3.weight (100, 512, 4, 3)']" in msg
    assert "unmatched in the model ['convs.0.weight (100, 512, 4, 4)']" in msg


def test_two_prefixes_that_fit_must_be_chosen_by_name(tmp_path):
    g, d = paper_networks()
    state = {
        **renamed(g.state_dict(), "generator", False),
        **renamed(g.state_dict(), "generator_ema", False),
        **renamed(d.state_dict(), "discriminator", False),
    }
    path = tmp_path / "release.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(ReleaseImportError, match=r"several prefixes fit the generator"):
        import_release_checkpoint(path)
    g2, _ = import_release_checkpoint(path, generator_prefix="generator_ema")
    assert_same_weights(g2, g)
    with pytest.raises(ReleaseImportError, match=r"generator_prefix='G' is invalid"):
        import_release_checkpoint(path, generator_prefix="G")


class Payload:
    """Unpickling this object runs ``os.system``: it writes the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f'echo pwned > "{self.marker}"',))


def test_the_payload_in_the_next_test_is_live(tmp_path):
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control)))  # full unpickling: this is what is at stake
    assert control.exists()


@pytest.mark.parametrize("writer", ["torch.save", "pickle", "pickle-protocol-2"])
def test_a_checkpoint_carrying_a_pickle_payload_is_refused_and_never_runs(tmp_path, writer):
    g, _ = paper_networks()
    marker = tmp_path / "marker"
    ckpt = lightning_checkpoint(renamed(g.state_dict(), "generator", False))
    ckpt["hyper_parameters"] = {"lr": 5e-4, "args": Payload(marker)}
    path = tmp_path / "evil.ckpt"
    if writer == "torch.save":
        torch.save(ckpt, path)
    else:
        protocol = 2 if writer == "pickle-protocol-2" else pickle.DEFAULT_PROTOCOL
        path.write_bytes(pickle.dumps(ckpt, protocol=protocol))
    with pytest.raises(ReleaseImportError) as err:
        import_release_checkpoint(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: refused: it contains Python objects other than tensors")
    assert "weights_only" in msg
    assert not marker.exists()


def test_a_truncated_checkpoint_gives_a_clear_error(tmp_path):
    g, d = paper_networks()
    buf = io.BytesIO()
    torch.save({"state_dict": renamed(g.state_dict(), "generator", False)}, buf)
    path = tmp_path / "cut.ckpt"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ReleaseImportError) as err:
        load_release_state_dict(path)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path} cannot be read as a PyTorch checkpoint (truncated or damaged?)")


def saved(obj: object) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@pytest.mark.parametrize(
    "content, expected",
    [
        (b"epoch: 19\nstate_dict: ...\n", "is not a PyTorch checkpoint: it starts with b'epoc'"),
        (b"", "is empty"),
        (saved([1, 2, 3]), "holds a list, not a checkpoint dict"),
        (saved({"epoch": 19}), "has no 'state_dict' of tensors"),
    ],
)
def test_files_that_are_not_checkpoints_give_a_clear_error(tmp_path, content, expected):
    path = tmp_path / "not_a.ckpt"
    path.write_bytes(content)
    with pytest.raises(ReleaseImportError) as err:
        load_release_state_dict(path)
    assert str(path) in str(err.value) and expected in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ReleaseImportError, match=r"missing\.ckpt does not exist"):
        import_release_checkpoint(tmp_path / "missing.ckpt")
