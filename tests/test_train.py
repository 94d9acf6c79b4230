"""The training loop: every preset runs, history is recorded, resume is exact."""

from __future__ import annotations

import hashlib
import os
import signal

import numpy as np
import pytest
import torch

from ssd_lib.config import PRESETS, ConfigError, make_config
from ssd_lib.generation.sampling import generate
from ssd_lib.models import Discriminator, build_discriminator, build_generator
from ssd_lib.training.checkpoint import load_checkpoint
from ssd_lib.training.runs import find_run, list_runs
from ssd_lib.training.trainer import Trainer, train
from ssd_lib.utils.images import uint8_to_float

# `make test-fast` leaves this module out: it trains every preset and checks bit-identical resumes.
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_trains_a_few_steps_and_records_history(preset, tiny_dataset):
    cfg = make_config(preset, "smoke", dataset="tiny")
    run = train(cfg, tiny_dataset, device="cpu", show_progress=False)
    assert run.complete and run.status["step"] == 3
    hist = run.history()
    assert hist["step"].tolist() == [1, 2, 3]
    for key in ("loss_g", "loss_d", "d_real", "d_fake", "d_acc", "grad_norm_g", "grad_norm_d"):
        assert np.isfinite(hist[key]).all(), key
    assert ((hist["d_acc"] >= 0) & (hist["d_acc"] <= 1)).all()
    if cfg.discriminator not in ("stylegan", "lapgan"):  # SN tracked on the DCGAN-style D
        for i in range(3):
            assert np.isfinite(hist[f"sigma_raw/middle.{i}"]).all()
    g = run.load_generator()
    assert g(torch.randn(2, cfg.nz)).shape == (2, 3, 64, 64)
    assert run.sample_grids()  # a grid at the end of the (cut-short) training
    _, meta = load_checkpoint(run.checkpoint)
    assert meta["config"] == cfg.to_dict()  # every checkpoint carries its config


def test_sn_keeps_effective_sigma_near_one_while_plain_weights_do_not(tiny_dataset):
    hist = {}
    for preset in ("paper", "no_sn"):
        cfg = make_config(preset, "smoke", dataset="tiny", max_steps=5, lr_d=5e-3)
        hist[preset] = train(cfg, tiny_dataset, device="cpu", show_progress=False).history()
    sn_eff = hist["paper"]["sigma_eff/middle.2"][-1]
    assert abs(sn_eff - 1.0) < 0.15
    # The stored weights are free in both runs; only SN rescales what the layer applies.
    assert hist["paper"]["sigma_raw/middle.2"][-1] > 1.0 + 2 * abs(sn_eff - 1.0)


def test_paper_recipe_feeds_reals_in_unit_range_and_corrected_in_signed(
    tiny_dataset, monkeypatch, tmp_path
):
    seen = {}

    def spy(self, real):
        seen[self.cfg.preset] = (float(real.min()), float(real.max()))
        raise KeyboardInterrupt  # stop after inspecting the first batch

    monkeypatch.setattr(Trainer, "train_step", spy)
    for preset in ("paper", "corrected"):
        trainer = Trainer(make_config(preset, "smoke"), tiny_dataset.train, tmp_path, "cpu", False)
        with pytest.raises(KeyboardInterrupt):
            trainer.fit()
    assert seen["paper"][0] >= 0.0 and seen["paper"][1] <= 1.0
    assert seen["corrected"][0] < -0.9 and seen["corrected"][1] > 0.9


def test_same_seed_same_weights_different_seed_different(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke")
    a = Trainer(cfg, tiny_dataset.train, tmp_path / "a", "cpu", False)
    b = Trainer(cfg, tiny_dataset.train, tmp_path / "b", "cpu", False)
    c = Trainer(cfg.replace(seed=7), tiny_dataset.train, tmp_path / "c", "cpu", False)
    for t in (a, b, c):
        t.fit()
    assert a.state_digest() == b.state_digest() != c.state_digest()


@pytest.mark.parametrize(
    "preset", ["paper", "corrected", "stylegan", "ada", "diffaugment", "lapgan"]
)
def test_interrupted_run_resumes_bit_identically(preset, tiny_dataset, tmp_path, monkeypatch):
    # 40 images, batch 8: 5 steps per epoch; 2 epochs = 10 steps. Interrupt mid-epoch 2.
    # Evaluation points every 3 steps (D's gap, a sample grid) are part of the run.
    cfg = make_config(preset, "smoke", dataset="tiny", epochs=2, max_steps=0, checkpoint_every=3)
    whole = Trainer(
        cfg, tiny_dataset.train, tmp_path / "whole", "cpu", False, val=tiny_dataset.val
    )  # train() passes the val split too
    assert whole.fit() == "complete" and whole.step == 10

    original = Trainer.train_step

    def interrupt_at_step_7(self, real):
        stats = original(self, real)
        if self.step == 6:  # self.step counts completed steps; this is the 7th
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    monkeypatch.setattr(Trainer, "train_step", interrupt_at_step_7)
    run_root = tmp_path / "runs"
    run = train(cfg, tiny_dataset, runs_root=run_root, device="cpu", show_progress=False)
    assert run.status["state"] == "interrupted" and run.status["step"] == 7
    monkeypatch.setattr(Trainer, "train_step", original)

    run = train(cfg, tiny_dataset, runs_root=run_root, device="cpu", show_progress=False)
    assert run.complete and run.status["step"] == 10
    resumed = Trainer(cfg, tiny_dataset.train, run.path, "cpu", False)
    resumed.load(run.checkpoint)
    assert resumed.state_digest() == whole.state_digest()
    np.testing.assert_array_equal(run.history()["loss_g"], [r["loss_g"] for r in whole.log.rows])


def test_complete_run_is_reused_not_retrained(tiny_dataset, monkeypatch):
    cfg = make_config("paper", "smoke", dataset="tiny")
    first = train(cfg, tiny_dataset, device="cpu", show_progress=False)
    monkeypatch.setattr(Trainer, "fit", lambda self: pytest.fail("retrained a complete run"))
    again = train(cfg, tiny_dataset, device="cpu", show_progress=False)
    assert again.path == first.path
    assert find_run(cfg, tiny_dataset.content_hash).path == first.path
    assert [r.path for r in list_runs()] == [first.path]
    assert "dataset=tiny preset=paper profile=smoke" in first.label()


def test_dataset_name_must_match_config(tiny_dataset):
    with pytest.raises(ConfigError, match="dataset='tiny'"):
        train(make_config("paper", "smoke"), tiny_dataset, device="cpu", show_progress=False)


def test_loading_a_checkpoint_into_a_different_config_is_refused(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke")
    t = Trainer(cfg, tiny_dataset.train, tmp_path / "r", "cpu", False)
    t.fit()
    other = Trainer(cfg.replace(seed=1), tiny_dataset.train, tmp_path / "s", "cpu", False)
    with pytest.raises(ConfigError, match="different config"):
        other.load(tmp_path / "r" / "checkpoints" / "latest")


def _reference_step(cfg, G, D, opt_g, opt_d, real, z):
    """One iteration written out from the recipe in docs/paper.md, independently of Trainer."""
    bce = torch.nn.functional.binary_cross_entropy
    if cfg.step_order == "g_then_d":
        p = D(G(z))
        opt_g.zero_grad()
        bce(p, torch.ones_like(p)).backward()
        opt_g.step()
        fake = G(z).detach()  # regenerated with the updated G, same z
        d_real, d_fake = D(real), D(fake)
        loss = 0.5 * (bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake)))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
    else:
        fake = G(z)
        d_real, d_fake = D(real), D(fake.detach())
        loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
        opt_d.zero_grad()
        loss.backward()
        opt_d.step()
        p = D(fake)
        opt_g.zero_grad()
        bce(p, torch.ones_like(p)).backward()
        opt_g.step()


@pytest.mark.parametrize("preset", ["paper", "corrected"])
def test_train_step_matches_the_recipe_written_out_by_hand(preset, tiny_dataset, tmp_path):
    cfg = make_config(preset, "smoke")
    trainer = Trainer(cfg, tiny_dataset.train, tmp_path, "cpu", False)
    torch.manual_seed(cfg.seed)
    G, D = build_generator(cfg), build_discriminator(cfg)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    real = uint8_to_float(tiny_dataset.train.images[:8], cfg.real_range)
    z = torch.randn(8, cfg.nz, generator=torch.Generator().manual_seed(cfg.seed + 1))
    trainer.train_step(real)
    _reference_step(cfg, G, D, opt_g, opt_d, real, z)
    for a, b in zip(
        list(trainer.G.parameters()) + list(trainer.D.parameters()),
        list(G.parameters()) + list(D.parameters()),
        strict=True,
    ):
        assert torch.equal(a, b)


@pytest.mark.parametrize("preset", ["paper", "stylegan"])
def test_w_avg_advances_once_per_training_step(preset, tiny_dataset, tmp_path):
    """The g_then_d step runs G forward twice; only the first pass may move w_avg (the
    generator's BatchNorm statistics do advance twice, as in the release)."""
    cfg = make_config(preset, "smoke", step_order="g_then_d")
    trainer = Trainer(cfg, tiny_dataset.train, tmp_path, "cpu", False)
    seen: list[torch.Tensor] = []
    track = trainer.G.track_w_avg

    def recording_track(w):
        seen.append(w.detach().clone())
        track(w)

    trainer.G.track_w_avg = recording_track
    before = trainer.G.w_avg.clone()
    trainer.train_step(uint8_to_float(tiny_dataset.train.images[:8], cfg.real_range))
    assert len(seen) == 2  # G ran forward twice in the step
    expected = seen[0].float().mean(0).lerp(before, trainer.G.w_avg_beta)
    torch.testing.assert_close(trainer.G.w_avg, expected)
    assert trainer.G.track_w  # restored for the next step


def test_ctrl_c_on_the_last_step_finishes_like_an_uninterrupted_run(
    tiny_dataset, tmp_path, monkeypatch
):
    cfg = make_config("paper", "smoke", epochs=2, max_steps=0)  # 10 steps, 5 per epoch
    whole = Trainer(cfg, tiny_dataset.train, tmp_path / "whole", "cpu", False)
    whole.fit()
    original = Trainer.train_step

    def interrupt_on_last(self, real):
        stats = original(self, real)
        if self.step == 9:
            os.kill(os.getpid(), signal.SIGINT)
        return stats

    monkeypatch.setattr(Trainer, "train_step", interrupt_on_last)
    cut = Trainer(cfg, tiny_dataset.train, tmp_path / "cut", "cpu", False)
    assert cut.fit() == "complete"
    assert (cut.epoch, cut.batch_in_epoch) == (whole.epoch, whole.batch_in_epoch) == (2, 0)
    assert cut.state_digest() == whole.state_digest()
    assert sorted(p.name for p in (tmp_path / "cut" / "samples").iterdir()) == [
        "epoch_001.png",
        "epoch_002.png",
    ]


def test_resuming_with_other_images_is_refused(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke")
    Trainer(cfg, tiny_dataset.train, tmp_path, "cpu", False).fit()
    other = tiny_dataset.train.subset(0.5)
    with pytest.raises(ConfigError, match="trained on other images"):
        Trainer(cfg, other, tmp_path / "x", "cpu", False).load(tmp_path / "checkpoints" / "latest")


def test_bf16_discriminator_output_does_not_saturate():
    d = Discriminator(spectral_norm=False)
    with torch.no_grad():
        d.last.weight.fill_(0.0)
        d.last.weight[0, 0, 0, 0] = 1.0
    x = torch.randn(2, 3, 64, 64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        p = d(x)
    assert p.dtype == torch.float32
    with torch.no_grad():
        p32 = d(x)
    torch.testing.assert_close(p, p32, atol=2e-2, rtol=0)


def test_generate_reads_outputs_in_the_declared_range():
    class Constant(torch.nn.Module):
        z_dim, num_ws = 4, 0

        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(1))

        def forward(self, z):
            return (
                torch.full((z.shape[0], 3, 2, 2), -0.5)
                + torch.tensor([0.0, 0.5, 1.0])[None, :, None, None]
                + 0 * self.p
            )

    z = torch.zeros(1, 4)
    unit, signed = generate(Constant(), z, "[0, 1]"), generate(Constant(), z, "[-1, 1]")
    # [0, 1] reading: -0.5 -> 0 (clipped), 0.0 -> 0, 0.5 -> 128; [-1, 1]: 64, 128, 191.
    assert unit[0, :, 0, 0].tolist() == [0, 0, 128]
    assert signed[0, :, 0, 0].tolist() == [64, 128, 191]
    with pytest.raises(ValueError, match="truncation_psi=0.5 needs a generator with a mapping"):
        generate(Constant(), z, "[0, 1]", truncation_psi=0.5)


def test_discriminator_gap_is_recorded_at_evaluation_points_without_changing_training(
    tiny_dataset, tmp_path
):
    # 2 epochs of 5 steps, a mid-epoch checkpoint every 3 steps: points at 3, 5, 6, 9, 10.
    cfg = make_config("paper", "smoke", epochs=2, max_steps=0, checkpoint_every=3)
    with_val = Trainer(cfg, tiny_dataset.train, tmp_path / "a", "cpu", False, val=tiny_dataset.val)
    # No val split and no mid-epoch evaluation points: nothing measured, nothing sampled.
    plain = cfg.replace(checkpoint_every=0)
    without = Trainer(plain, tiny_dataset.train, tmp_path / "b", "cpu", False)
    with_val.fit()
    without.fit()
    rows = [r for r in with_val.log.rows if "d_val_eval" in r]
    assert [r["step"] for r in rows] == [3, 5, 6, 9, 10]
    grids = sorted(p.name for p in (tmp_path / "a" / "samples").glob("*.png"))
    assert grids == ["epoch_001.png", "epoch_002.png"] + [f"step_00000{i}.png" for i in (3, 6, 9)]
    assert all(0 < r["d_val_eval"] < 1 and 0 < r["d_train_eval"] < 1 for r in rows)
    for a, b in zip(with_val.G.state_dict().values(), without.G.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # measuring in eval mode changed nothing
    for a, b in zip(with_val.D.state_dict().values(), without.D.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_auto_precision_never_picks_bf16_on_a_cpu_without_native_support(monkeypatch, caplog):
    import ssd_lib.utils.hardware
    from ssd_lib.training.devices import resolve_precision

    cpu = torch.device("cpu")
    monkeypatch.setattr(ssd_lib.utils.hardware, "has_native_bf16", lambda flags=None: False)
    assert resolve_precision("auto", cpu) == "fp32"
    assert resolve_precision("fp32", cpu) == "fp32"
    assert resolve_precision("bf16", cpu) == "bf16" and "emulated and slow" in caplog.text
    monkeypatch.setattr(ssd_lib.utils.hardware, "has_native_bf16", lambda flags=None: True)
    assert resolve_precision("auto", cpu) == "bf16"


def test_a_run_records_the_precision_it_computed_in(tiny_dataset, tmp_path):
    cfg = make_config("paper", "smoke", dataset="tiny", precision="auto")
    run = train(cfg, tiny_dataset, runs_root=tmp_path, device="cpu", show_progress=False)
    from ssd_lib.utils.hardware import has_native_bf16

    assert run.status["precision"] == ("bf16" if has_native_bf16() else "fp32")
    assert run.status["device"] == "cpu"


def test_augmentation_at_p_0_trains_exactly_as_none_and_at_p_1_differs(tiny_dataset, tmp_path):
    base = make_config("corrected", "smoke", dataset="tiny")
    digests = {}
    for name, cfg in {
        "none": base,
        "p0": base.replace(augment="diffaugment", augment_p=0.0),
        "p1": base.replace(augment="diffaugment", augment_p=1.0),
    }.items():
        trainer = Trainer(cfg, tiny_dataset.train, tmp_path / name, "cpu", False)
        trainer.fit()
        trainer.state_digest()  # brings the history tensors up to date
        tensors = trainer.state_tensors()
        # The augmentation's own RNG state is saved only when there is an augmentation.
        assert ("rng.augment" in tensors) == (name != "none")
        tensors.pop("rng.augment", None)
        digests[name] = hashlib.sha256(
            b"".join(
                k.encode() + v.cpu().contiguous().numpy().tobytes()
                for k, v in sorted(tensors.items())
            )
        ).hexdigest()
    assert digests["p0"] == digests["none"] != digests["p1"]


def test_ada_logs_p_and_keeps_its_state_in_the_checkpoint(tiny_dataset, tmp_path):
    # Random reals: D separates them from G's early images at once, so r_t > target, p rises.
    cfg = make_config(  # at the paper's width: a D that tells random reals apart at once
        "ada",
        "smoke",
        dataset="tiny",
        max_steps=8,
        ada_interval=2,
        ada_speed_images=64,
        ngf=64,
        ndf=64,
    )
    run = train(cfg, tiny_dataset, device="cpu", show_progress=False)
    p = run.history()["augment_p"]
    steps = run.status["step"]  # the smoke profile's epochs of the 40 tiny images
    assert steps >= 4 and len(p) == steps and ((p >= 0) & (p <= 1)).all()
    _, meta = load_checkpoint(run.checkpoint)
    assert meta["ada"]["p"] == p[-1] and len(meta["ada"]["log"]) == steps // 2
    assert all(-1 <= r <= 1 for _, _, r in meta["ada"]["log"])
    # r_t is logged on the steps that update p, and blank on the others.
    rt = run.history()["augment_rt"]
    np.testing.assert_array_equal(rt[1::2], [r for _, _, r in meta["ada"]["log"]])
    assert np.isnan(rt[0::2]).all()
    assert p[-1] > 0, meta["ada"]["log"]
