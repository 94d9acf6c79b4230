"""The latent explorer: rendering is a pure function of the state; the widget is a thin layer."""

from __future__ import annotations

import io
import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ssd_lib.generation.explorer import (
    Explorer,
    ExplorerState,
    InvalidParameterError,
    direction_scales,
    directions_from_pca,
    sanitize_name,
)
from ssd_lib.generation.sampling import sample_z
from ssd_lib.models import DCGANGenerator, MappingDCGANGenerator, SSDGenerator, StyleGANGenerator
from ssd_lib.utils.images import float_to_uint8

VR = "[-1, 1]"


@pytest.fixture(scope="module")
def ssd() -> SSDGenerator:
    torch.manual_seed(0)
    g = SSDGenerator()
    with torch.no_grad():
        # Untrained, the tied mapping squeezes every z onto nearly one w (std ~0.002), so seeds
        # differ by a grey level or two; a larger weight spreads W out like a trained network.
        g.mapping.layers[0].weight.mul_(3.0)
        g.train()
        for _ in range(3):  # a few training-mode passes give w_avg a non-zero value
            g(torch.randn(16, 100))
    g.eval()
    assert g.w_avg.abs().sum() > 0
    return g


@pytest.fixture(scope="module")
def stylegan() -> StyleGANGenerator:
    torch.manual_seed(0)
    g = StyleGANGenerator(width=0.0625)
    with torch.no_grad():
        g.w_avg.copy_(torch.randn(512) * 0.1)
        for layer in g.layers:  # noise weights start at zero; make the noise visible
            layer.noise.weight.fill_(0.5)
    return g.eval()


@pytest.fixture(scope="module")
def pca(ssd) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    dirs = directions_from_pca(ssd, n=300, k=5, seed=0)
    return dirs, direction_scales(ssd, dirs, n=300, seed=0)


@pytest.fixture
def ex(ssd, pca, tmp_path) -> Explorer:
    dirs, scales = pca
    return Explorer(ssd, VR, tmp_path / "out", label="unit-test", directions=dirs, scales=scales)


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.dtype == b.dtype == torch.uint8 and torch.equal(a, b)


def test_render_is_uint8_3x64x64_and_repeats_exactly(ex):
    img = ex.render()
    assert img.shape == (3, 64, 64) and img.dtype == torch.uint8
    assert same(ex.render(), img)
    assert same(ex.set(seed=ex.state.seed), img)


def test_render_matches_mapping_then_synthesis_by_hand(ex, ssd):
    with torch.no_grad():
        expected = float_to_uint8(ssd.synthesis(ssd.mapping(sample_z(1, 100, 7))), VR)[0]
    assert same(ex.set(seed=7), expected)


def test_changing_the_seed_changes_the_image(ex):
    a = ex.render()
    b = ex.set(seed=1)
    assert (a.int() - b.int()).abs().float().mean() > 5  # grey levels, of 255


def test_direction_slider_moves_image_and_moving_back_restores_it(ex):
    start = ex.render()
    moved = ex.set(offsets={"PC1": 2.0})
    assert not same(moved, start)
    assert ex.state.offsets == {"PC1": 2.0, "PC2": 0.0, "PC3": 0.0, "PC4": 0.0, "PC5": 0.0}
    assert same(ex.set(offsets={"PC1": 0.0}), start)


def test_pca_directions_are_orthonormal_and_scales_are_projection_stds(ssd):
    dirs = directions_from_pca(ssd, n=300, k=3, seed=0)
    assert list(dirs) == ["PC1", "PC2", "PC3"]
    m = torch.stack(list(dirs.values())).double()  # (3, 100)
    torch.testing.assert_close(m @ m.T, torch.eye(3, dtype=torch.float64), atol=1e-5, rtol=0)
    scales = direction_scales(ssd, dirs, n=300, seed=0)
    with torch.no_grad():
        w = ssd.mapping(sample_z(300, 100, 0)).double().numpy()
    for name, d in dirs.items():
        assert scales[name] == pytest.approx(np.std(w @ d.double().numpy(), ddof=1), rel=1e-6)
    assert scales["PC1"] >= scales["PC2"] >= scales["PC3"] > 0
    # Same sample, so the same answer every time (signs are fixed too).
    again = directions_from_pca(ssd, n=300, k=3, seed=0)
    assert all(torch.equal(dirs[k], again[k]) for k in dirs)


def test_offset_unit_is_one_std_along_a_labelled_direction(ssd, tmp_path):
    d = torch.zeros(100)
    d[3] = 2.0  # not unit length: the explorer normalises it
    ex = Explorer(ssd, VR, tmp_path, directions={"ears": d}, scales={"ears": 0.25})
    assert torch.equal(ex.directions["ears"], torch.eye(100)[3])
    with torch.no_grad():
        w = ssd.mapping(sample_z(1, 100, 0))
        w[0, 3] += 2 * 0.25  # two slider units of std 0.25
        expected = float_to_uint8(ssd.synthesis(w), VR)[0]
    assert same(ex.set(offsets={"ears": 2.0}), expected)


def test_psi_zero_renders_w_avg_for_every_seed(ex, ssd):
    with torch.no_grad():
        expected = float_to_uint8(ssd.synthesis(ssd.w_avg[None]), VR)[0]
    images = [ex.set(seed=s, psi=0.0) for s in (0, 1, 2)]
    assert all(same(img, expected) for img in images)
    assert not same(ex.set(seed=0, psi=1.0), ex.set(seed=1, psi=1.0))


def test_crossover_num_ws_is_no_mixing_and_zero_is_the_mix_seeds_image(ex):
    plain, other = ex.render(), ex.render(replace(ex.state, seed=5))
    assert same(ex.set(mix_seed=5, crossover=ex.num_ws), plain)
    assert same(ex.set(crossover=0), other)
    half = ex.set(crossover=2)
    assert not same(half, plain) and not same(half, other)


def test_interpolation_t0_is_the_start_and_t1_the_other_seed(ex):
    start, end = ex.render(), ex.render(replace(ex.state, seed=9))
    assert same(ex.set(interp_seed=9, t=0.0), start)
    assert same(ex.set(t=1.0), end)
    mid = ex.set(t=0.5)
    assert not same(mid, start) and not same(mid, end)


def test_stylegan_render_is_deterministic_and_leaves_global_rng_alone(stylegan, tmp_path):
    dirs = {"u": torch.linspace(-1, 1, 512), "v": torch.ones(512)}  # skip PCA: kept fast
    ex = Explorer(stylegan, VR, tmp_path, directions=dirs, scale_samples=300)
    assert ex.num_ws == 10
    with torch.no_grad():  # the noise really matters: two unseeded syntheses differ
        w = stylegan.mapping(sample_z(1, 512, 0))
        assert not torch.equal(stylegan.synthesis(w), stylegan.synthesis(w))
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    a = ex.set(seed=4, mix_seed=2, crossover=5, psi=0.7)
    b = ex.set(offsets={"u": 1.0, "v": -0.5})
    assert not same(a, b)
    b = ex.set(offsets={"u": 0.0, "v": 0.0})
    assert torch.equal(torch.get_rng_state(), rng)
    assert same(a, b)
    assert not same(a, ex.set(seed=5))
    assert same(ex.set(seed=4), a)
    torch.manual_seed(999)  # the global RNG's state does not leak into the noise
    assert same(ex.render(), a)


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"psi": 2.5}, ["psi=2.5", "[0, 2]"]),
        ({"psi": float("nan")}, ["psi=nan"]),
        ({"crossover": 5}, ["crossover=5", "[0, 4]"]),
        ({"crossover": -1}, ["crossover=-1"]),
        ({"seed": -1}, ["seed=-1", "[0, 2**32 - 1]"]),
        ({"seed": 1.5}, ["seed=1.5"]),
        ({"mix_seed": -3}, ["mix_seed=-3", "or None"]),
        ({"interp_seed": "7"}, ["interp_seed='7'"]),
        ({"t": 1.5}, ["t=1.5", "[0, 1]"]),
        ({"offsets": {"nose": 1.0}}, ["offsets='nose'", "['PC1', 'PC2', 'PC3'"]),
        ({"offsets": {"PC1": float("inf")}}, ["offsets['PC1']=inf"]),
        ({"sed": 3}, ["'sed'", "['seed', 'offsets', 'psi'"]),
    ],
)
def test_invalid_values_raise_naming_parameter_value_and_allowed(ex, changes, words):
    before, image = replace(ex.state), ex.image
    with pytest.raises(InvalidParameterError) as err:
        ex.set(**changes)
    for word in words:
        assert word in str(err.value)
    assert ex.state == before and ex.image is image  # nothing changed
    assert isinstance(err.value, ValueError)


def test_dcgan_is_refused_and_the_no_adain_ablation_accepted(tmp_path):
    torch.manual_seed(0)
    with pytest.raises(InvalidParameterError, match="mapping network.*DCGANGenerator"):
        Explorer(DCGANGenerator(ngf=8), VR, tmp_path)
    ex = Explorer(MappingDCGANGenerator(ngf=8), VR, tmp_path, scale_samples=50)
    assert ex.num_ws == 1 and ex.render().shape == (3, 64, 64)


def test_widget_slider_updates_the_image_widget(ex):
    box = ex.widget(size=256)
    assert box.children and ex.controls["status"].value.startswith("unit-test | seed=0")
    before = ex.controls["image"].value
    ex.controls["offset:PC2"].value = 1.5  # fires the observer, as dragging does
    assert ex.state.offsets["PC2"] == 1.5
    shown = ex.controls["image"].value
    assert shown != before
    decoded = np.asarray(Image.open(io.BytesIO(shown)).convert("RGB"))  # (256, 256, 3)
    expected = ex.render().permute(1, 2, 0).numpy().repeat(4, axis=0).repeat(4, axis=1)
    np.testing.assert_array_equal(decoded, expected)
    ex.controls["mix_seed"].value = 3  # mixing is off: no change yet
    assert ex.state.mix_seed is None
    ex.controls["mix_on"].value = True
    assert ex.state.mix_seed == 3 and "mix=3@2/4" in ex.controls["status"].value


def test_set_from_code_moves_the_widget_controls(ex):
    ex.widget()
    ex.set(seed=7, psi=0.5, interp_seed=2, t=0.25)
    c = ex.controls
    assert (c["seed"].value, c["psi"].value, c["t"].value) == (7, 0.5, 0.25)
    assert c["interp_on"].value and c["interp_seed"].value == 2
    assert ex.state.seed == 7  # syncing the controls did not loop back into set()


@pytest.mark.parametrize(
    ("typed", "saved"),
    [
        ("../../etc/passwd", "passwd.png"),
        ("/tmp/x.png", "x.png"),
        ("a/b/c", "c.png"),
        ("ok name!.png", "ok_name.png"),
        ("..\\..\\win.PNG", "win.png"),
        (".hidden", "hidden.png"),
    ],
)
def test_save_writes_only_inside_out_dir(ex, tmp_path, monkeypatch, typed, saved):
    # Nest out_dir and the working folder inside tmp_path, so that any escape ("../..",
    # a relative or an absolute path under tmp_path) would land where rglob can see it.
    ex.out_dir = tmp_path / "a" / "b" / "out"
    (tmp_path / "a").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    typed = typed.replace("/tmp/", f"{tmp_path}/")
    path = ex.save(typed)
    out = ex.out_dir.resolve()
    assert path == out / saved
    files = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert files == sorted([out / saved, out / saved.replace(".png", ".json")])


@pytest.mark.parametrize("typed", ["..", "", "...", "/", "!!!", "a/..", ".png"])
def test_save_refuses_names_that_sanitise_to_nothing(ex, typed):
    with pytest.raises(InvalidParameterError, match=r"^name=.* is invalid; allowed: a file name"):
        ex.save(typed)
    assert not ex.out_dir.exists()


def test_sidecar_reproduces_the_saved_image(ex):
    ex.set(seed=11, psi=0.8, offsets={"PC3": -1.0}, mix_seed=4, crossover=1)
    path = ex.save("keep")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["label"] == "unit-test" and meta["value_range"] == VR
    assert meta["state"]["seed"] == 11 and meta["state"]["offsets"]["PC3"] == -1.0
    png = np.asarray(Image.open(path)).transpose(2, 0, 1)
    assert same(ex.render(ExplorerState(**meta["state"])), torch.from_numpy(png.copy()))


def test_save_button_writes_sanitised_file_and_reports_errors(ex):
    ex.widget()
    assert ex.controls["save_button"].description == "save as explorer.png"
    ex.controls["save_name"].value = "../../evil"
    assert ex.controls["save_button"].description == "save as evil.png"  # what a click writes
    ex.controls["save_button"].click()
    assert (ex.out_dir / "evil.png").is_file()
    assert "saved" in ex.controls["status"].value
    ex.controls["save_name"].value = ".."
    assert ex.controls["save_button"].description == "save (type a file name)"
    ex.controls["save_button"].click()  # no exception into Jupyter: the label says why
    assert "not saved" in ex.controls["status"].value


def test_sanitize_name_keeps_safe_characters_only():
    assert sanitize_name("dog_01-final.v2.png") == "dog_01-final.v2.png"
    assert sanitize_name("Hund über alles") == "Hund_ber_alles.png"


def test_from_run_takes_generator_range_and_label(ssd, tmp_path):
    run = SimpleNamespace(
        path=tmp_path / "run",
        work_dir=tmp_path / "work",  # where a run (or a published run) keeps its outputs
        config=SimpleNamespace(real_range="[0, 1]"),
        load_generator=lambda: ssd,
        label=lambda: "dataset=embedded preset=paper",
    )
    ex = Explorer.from_run(run, scale_samples=50)
    assert (ex.value_range, ex.label) == ("[0, 1]", "dataset=embedded preset=paper")
    assert ex.save("x").parent == (tmp_path / "work" / "explorer").resolve()


def test_sweep_renders_each_amount_and_leaves_the_state_alone(ex):
    name = next(iter(ex.directions))
    before = ex.state
    frames = ex.sweep(name, [-2.0, 0.0, 2.0])
    assert frames.shape == (3, 3, 64, 64) and ex.state == before
    assert same(frames[1], ex.render())  # amount 0 = the current image
    assert same(frames[2], ex.set(offsets={name: 2.0}))
    assert not same(frames[0], frames[2])
    with pytest.raises(InvalidParameterError, match="direction='nope' is invalid"):
        ex.sweep("nope", [0.0])
