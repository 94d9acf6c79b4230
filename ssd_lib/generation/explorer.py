"""The latent explorer: move one generated image through W with sliders.

The state (seed, offsets along named directions in W, truncation, style mixing, interpolation)
is a plain dataclass, and :meth:`Explorer.render` is a pure function of it, so everything the
notebook's sliders do can be tested without a browser. :meth:`Explorer.widget` is a thin
ipywidgets layer whose observers only call :meth:`Explorer.set`.

How a state becomes an image (``base(s) = mapping(sample_z(1, z_dim, s))``, shape (1, D)):

    w   = base(seed), or lerp(base(seed), base(interp_seed), t) when interpolating
    w_a = truncate(w, psi) + delta,       delta = sum_k offsets[k] * scale_k * direction_k
    w_b = truncate(base(mix_seed), psi) + delta                      (only when mixing)
    ws  = mix_styles(w_a, w_b, crossover): style layers [0, crossover) from w_a, the rest w_b
    img = float_to_uint8(synthesis(ws), value_range)                 (3, 64, 64) uint8

Offsets are added after truncation so that a slider's unit stays exactly one standard
deviation whatever psi is, and they are added to both ends of an interpolation and to the
mixing code, so t=1 shows the interpolation seed's image and crossover=0 the mix seed's image
with the same edits. Noise inputs (StyleGAN) are drawn from an RNG seeded with ``seed`` alone:
they belong to the image being edited, not to the codes it is mixed or interpolated with.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from PIL import Image
from torch import nn

from ssd_lib.generation.sampling import sample_z, seeded_rng
from ssd_lib.utils.atomic import atomic_write_json, sha256_file
from ssd_lib.utils.errors import SSDError
from ssd_lib.utils.images import check_value_range, float_to_uint8, save_image
from ssd_lib.utils.validate import (
    MAX_SEED,
    PSI_RANGE,
    check_int,
    check_psi,
    check_real,
    check_seed,
    fail,
)

log = logging.getLogger(__name__)

SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


class InvalidParameterError(SSDError, ValueError, TypeError):
    """A bad explorer setting; a ValueError and a TypeError, as in scikit-learn."""


@dataclass
class ExplorerState:
    """Everything that decides the rendered image.

    ``offsets[name]`` is the distance along direction ``name`` in units of the standard
    deviation of ``w`` projected on that direction (so 2.0 means "two std further").
    ``psi`` in [0, 2] is truncation towards ``w_avg`` (1 = none). ``mix_seed`` (None = off) and
    ``crossover`` in [0, num_ws] mix styles by layer; ``interp_seed`` (None = off) and ``t`` in
    [0, 1] interpolate in W.
    """

    seed: int = 0
    offsets: dict[str, float] = field(default_factory=dict)
    psi: float = 1.0
    mix_seed: int | None = None
    crossover: int = 0
    interp_seed: int | None = None
    t: float = 0.0


@torch.no_grad()
def _sample_w(generator: nn.Module, n: int, seed: int) -> torch.Tensor:
    """w = mapping(z) for ``n`` codes from ``seed``: (n, D) float32 on the generator's device."""
    device = next(generator.parameters()).device
    return generator.mapping(sample_z(n, generator.z_dim, seed).to(device)).float()


def _require_mapping(generator: nn.Module) -> None:
    if getattr(generator, "num_ws", 0) < 1 or not hasattr(generator, "synthesis"):
        raise InvalidParameterError(
            f"The explorer needs a generator with a mapping network and style inputs (SSD, the "
            f"mapping-without-AdaIN ablation or the StyleGAN baseline); "
            f"{type(generator).__name__} has none (num_ws={getattr(generator, 'num_ws', 0)})."
        )


def directions_from_pca(
    generator: nn.Module, n: int = 2000, k: int = 5, seed: int = 0
) -> dict[str, torch.Tensor]:
    """The top-``k`` principal components of W as unit vectors (D,), named "PC1".."PCk".

    W is sampled as ``mapping(sample_z(n, z_dim, seed))``; PC1 has the largest variance. The
    sign of each component is fixed so that its largest-magnitude entry is positive, which
    makes the result independent of the linear-algebra backend. The slider scale is the std
    of w along each component; :func:`direction_scales` with the same ``n`` and ``seed``
    returns sqrt(eigenvalue / (n - 1)) of this decomposition.
    """
    _require_mapping(generator)
    n = check_int("n", n, 2, error=InvalidParameterError)
    w = _sample_w(generator, n, seed).double().cpu()
    k = check_int("k", k, 1, min(n, w.shape[1]), error=InvalidParameterError)
    x = w - w.mean(0)
    _, vecs = torch.linalg.eigh(x.T @ x)  # (D, D) scatter matrix; eigenvalues ascending
    out = {}
    for i in range(k):
        v = vecs[:, -1 - i]
        out[f"PC{i + 1}"] = (v * torch.sign(v[v.abs().argmax()])).float()
    return out


def direction_scales(
    generator: nn.Module, directions: dict[str, torch.Tensor], n: int = 2000, seed: int = 0
) -> dict[str, float]:
    """Std of ``w @ d`` over ``n`` sampled codes, per unit direction ``d``: one slider unit."""
    w = _sample_w(generator, n, seed).double().cpu()
    return {name: float((w @ d.double().cpu()).std()) for name, d in directions.items()}


def png_bytes(image: torch.Tensor, size: int = 256) -> bytes:
    """uint8 (3, H, W) -> PNG bytes of a ``size`` x ``size`` nearest-neighbour upscale."""
    array = image.permute(1, 2, 0).cpu().numpy()
    buf = io.BytesIO()
    Image.fromarray(array).resize((size, size), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def sanitize_name(name: str) -> str:
    """A bare file name ``<stem>.png`` made of ``[A-Za-z0-9._-]``, whatever was typed.

    Folders are dropped (``a/b/c`` -> ``c.png``, ``../../etc/passwd`` -> ``passwd.png``), other
    characters become ``_``, and leading/trailing ``._-`` are stripped so no hidden file and no
    ``..`` can come out. Raises :class:`InvalidParameterError` when nothing is left.
    """
    if not isinstance(name, str):
        fail("name", name, "a str", error=InvalidParameterError)
    base = PurePosixPath(name.replace("\\", "/")).name
    stem = SAFE_CHARS.sub("_", base)
    if stem.lower().endswith(".png"):
        stem = stem[:-4]
    stem = stem.strip("._-")[:100].strip("._-")
    if not stem:
        fail(
            "name",
            name,
            "a file name with at least one character of [A-Za-z0-9]",
            error=InvalidParameterError,
        )
    return f"{stem}.png"


class Explorer:
    """Render, edit and save one image of a style generator; see the module docstring.

    ``value_range`` is the range the generator was trained to imitate (``cfg.real_range``).
    ``directions``: named vectors (D,) in W, normalised here to unit length; when None, the
    top five principal components of W (:func:`directions_from_pca`). ``scales``: the std of
    w along each direction (one slider unit); computed from ``scale_samples`` codes when None.
    Saved images go to ``out_dir`` and nowhere else. The generator is put in eval mode.
    """

    def __init__(
        self,
        generator: nn.Module,
        value_range: str,
        out_dir: str | Path,
        label: str = "",
        directions: dict[str, torch.Tensor] | None = None,
        scales: dict[str, float] | None = None,
        scale_samples: int = 2000,
    ) -> None:
        _require_mapping(generator)
        self.generator = generator.eval()
        self.value_range = check_value_range(value_range)
        self.out_dir = Path(out_dir)
        self.label = label
        self.num_ws: int = generator.num_ws
        self.device = next(generator.parameters()).device
        w_dim = _sample_w(generator, 1, 0).shape[1]
        if directions is None:
            directions = directions_from_pca(generator, n=scale_samples)
        self.directions: dict[str, torch.Tensor] = {}
        for name, d in directions.items():
            d = torch.as_tensor(d, dtype=torch.float32).cpu()
            if d.shape != (w_dim,) or not torch.isfinite(d).all() or d.norm() == 0:
                fail(
                    f"directions[{name!r}]",
                    tuple(d.shape),
                    f"a finite non-zero ({w_dim},)",
                    error=InvalidParameterError,
                )
            self.directions[name] = d / d.norm()
        if scales is None:
            scales = direction_scales(generator, self.directions, n=scale_samples)
        if set(scales) != set(self.directions):
            fail(
                "scales",
                sorted(scales),
                f"a dict with keys {sorted(self.directions)}",
                error=InvalidParameterError,
            )
        for name, value in scales.items():
            check_real(f"scales[{name!r}]", value, 1e-12, error=InvalidParameterError)
        self.scales = {name: float(scales[name]) for name in self.directions}
        self.state = ExplorerState(
            offsets={name: 0.0 for name in self.directions}, crossover=self.num_ws // 2
        )
        self.image = self.render()
        self.status = ""
        self.controls: dict[str, Any] = {}  # the latest widget()'s controls, by name
        self._syncing = False
        self._image_size = 256

    @classmethod
    def from_run(cls, run: Any, out_dir: str | Path | None = None, **kwargs: Any) -> Explorer:
        """An explorer on a run's latest generator; saves go to ``<run>/explorer`` by default."""
        return cls(
            run.load_generator(),
            run.config.real_range,
            out_dir if out_dir is not None else Path(run.work_dir) / "explorer",
            label=run.label(),
            **kwargs,
        )

    # ----- state -------------------------------------------------------------------------------
    def validate(self, state: ExplorerState) -> None:
        """Raise :class:`InvalidParameterError` naming the first bad field of ``state``."""
        check_seed("seed", state.seed, error=InvalidParameterError)
        check_psi(state.psi, "psi", error=InvalidParameterError)
        check_seed("mix_seed", state.mix_seed, optional=True, error=InvalidParameterError)
        check_int(
            "crossover", state.crossover, 0, self.num_ws, error=InvalidParameterError
        )  # num_ws = no mixing
        check_seed("interp_seed", state.interp_seed, optional=True, error=InvalidParameterError)
        check_real("t", state.t, 0.0, 1.0, error=InvalidParameterError)
        if not isinstance(state.offsets, dict):
            fail(
                "offsets",
                state.offsets,
                "a dict of direction name -> float",
                error=InvalidParameterError,
            )
        for name, value in state.offsets.items():
            if name not in self.directions:
                fail(
                    "offsets",
                    name,
                    f"keyed by known directions {list(self.directions)}",
                    error=InvalidParameterError,
                )
            check_real(f"offsets[{name!r}]", value, error=InvalidParameterError)

    def set(self, **changes: Any) -> torch.Tensor:
        """Change some state fields, validate them all, re-render; returns the new image.

        ``offsets`` is a partial update: ``set(offsets={"PC1": 2.0})`` leaves the others.
        Nothing changes when a value is invalid.
        """
        allowed = [f.name for f in fields(ExplorerState)]
        unknown = sorted(set(changes) - set(allowed))
        if unknown:
            fail("set() keyword", unknown[0], f"one of {allowed}", error=InvalidParameterError)
        if "offsets" in changes:
            if not isinstance(changes["offsets"], dict):
                fail(
                    "offsets",
                    changes["offsets"],
                    "a dict of direction name -> float",
                    error=InvalidParameterError,
                )
            changes["offsets"] = {**self.state.offsets, **changes["offsets"]}
        new = replace(self.state, **changes)
        self.validate(new)
        self.state = new
        self.image = self.render()
        self.status = ""
        log.debug("explorer state %s", new)
        self._refresh_view()
        return self.image

    # ----- rendering ---------------------------------------------------------------------------
    def _base_w(self, seed: int) -> torch.Tensor:
        return _sample_w(self.generator, 1, seed)  # (1, D)

    @torch.no_grad()
    def render(self, state: ExplorerState | None = None) -> torch.Tensor:
        """uint8 (3, 64, 64) for ``state`` (default: the current one); no other input matters.

        The global RNG state is left exactly as it was.
        """
        s = self.state if state is None else state
        self.validate(s)
        g = self.generator
        delta = torch.zeros(g.w_avg.shape[0], device=self.device)
        for name, amount in s.offsets.items():
            delta += float(amount) * self.scales[name] * self.directions[name].to(self.device)
        w = self._base_w(s.seed)
        if s.interp_seed is not None:
            w = torch.lerp(w, self._base_w(s.interp_seed), float(s.t))
        ws = g.truncate(w, float(s.psi)) + delta
        if s.mix_seed is not None:
            w_mix = g.truncate(self._base_w(s.mix_seed), float(s.psi)) + delta
            ws = g.mix_styles(ws, w_mix, int(s.crossover))
        # Noise inputs read the global RNG: seed it for this render only, so renders repeat
        # exactly and the caller's RNG stream is not disturbed.
        with seeded_rng(self.device, s.seed):
            img = g.synthesis(ws)
        return float_to_uint8(img, self.value_range)[0].cpu()

    def sweep(self, name: str, amounts: list[float]) -> torch.Tensor:
        """uint8 (len(amounts), 3, 64, 64): the current state with direction ``name`` set to
        each amount in turn (the state itself is left unchanged)."""
        if name not in self.directions:
            fail("direction", name, f"one of {list(self.directions)}", error=InvalidParameterError)
        frames = []
        for a in amounts:
            frames.append(self.render(replace(self.state, offsets={**self.state.offsets, name: a})))
        return torch.stack(frames)

    # ----- saving ------------------------------------------------------------------------------
    def save(self, name: str) -> Path:
        """Write the current image as ``out_dir/<sanitised name>.png`` plus a JSON sidecar.

        The sidecar holds the state, label, value range, directions and scales, enough to
        render the same image again. An existing file of the same name is replaced.
        """
        filename = sanitize_name(name)
        out_dir = self.out_dir.resolve()
        path = out_dir / filename
        if path.parent != out_dir:  # cannot happen after sanitising; a last line of defence
            raise RuntimeError(f"refusing to write {path} outside {out_dir}")
        save_image(self.image.permute(1, 2, 0).numpy(), path)
        sidecar = {
            "image": filename,
            "sha256": sha256_file(path),
            "label": self.label,
            "generator": type(self.generator).__name__,
            "value_range": self.value_range,
            "state": asdict(self.state),
            "scales": self.scales,
            "directions": {k: v.tolist() for k, v in self.directions.items()},
        }
        atomic_write_json(path.with_suffix(".json"), sidecar)
        log.info("explorer saved %s", path)
        return path

    # ----- widget ------------------------------------------------------------------------------
    @staticmethod
    def _save_label(name: str) -> str:
        """The save button's text: the file a click writes, or why there is none."""
        try:
            return f"save as {sanitize_name(name)}"
        except InvalidParameterError:
            return "save (type a file name)"

    def describe(self) -> str:
        """One line for under the image: provenance, then the state."""
        s = self.state
        parts = [f"seed={s.seed}", f"psi={s.psi:g}"]
        parts += [f"{k}={v:+g}" for k, v in s.offsets.items() if v]
        if s.mix_seed is not None:
            parts.append(f"mix={s.mix_seed}@{s.crossover}/{self.num_ws}")
        if s.interp_seed is not None:
            parts.append(f"interp={s.interp_seed} t={s.t:g}")
        text = f"{self.label} | {' '.join(parts)}" if self.label else " ".join(parts)
        return f"{text} | {self.status}" if self.status else text

    def _apply(self, **changes: Any) -> None:
        """What every observer calls: set(), or show the error instead of raising into Jupyter."""
        if self._syncing or not changes:
            return
        try:
            self.set(**changes)
        except InvalidParameterError as e:
            self.status = str(e)
            self._refresh_view()

    def _refresh_view(self) -> None:
        """Make the latest widget show the current state and image (after any set())."""
        c = self.controls
        if not c:
            return
        s = self.state
        values = {"seed": s.seed, "psi": s.psi, "crossover": s.crossover, "t": s.t}
        values |= {"mix_on": s.mix_seed is not None, "interp_on": s.interp_seed is not None}
        if s.mix_seed is not None:
            values["mix_seed"] = s.mix_seed
        if s.interp_seed is not None:
            values["interp_seed"] = s.interp_seed
        values |= {f"offset:{k}": v for k, v in s.offsets.items()}
        self._syncing = True  # writing .value fires observers; they must not call set() again
        try:
            for key, value in values.items():
                c[key].value = value
        finally:
            self._syncing = False
        c["image"].value = png_bytes(self.image, self._image_size)
        c["status"].value = self.describe()

    def widget(self, size: int = 256, offset_range: float = 4.0) -> Any:
        """The ipywidgets UI (a VBox); its controls are also in ``self.controls`` by name."""
        import ipywidgets as W  # imported here: the library is usable without a front end

        s, n = self.state, self.num_ws

        def seed_box(value: int | None, description: str) -> Any:
            value = 1 if value is None else value
            return W.BoundedIntText(value=value, min=0, max=MAX_SEED, description=description)

        c: dict[str, Any] = {
            "seed": seed_box(s.seed, "seed"),
            "psi": W.FloatSlider(
                value=s.psi, min=PSI_RANGE[0], max=PSI_RANGE[1], step=0.05, description="psi"
            ),
            "mix_on": W.Checkbox(value=s.mix_seed is not None, description="mix styles"),
            "mix_seed": seed_box(s.mix_seed, "mix seed"),
            "crossover": W.IntSlider(value=s.crossover, min=0, max=n, description="crossover"),
            "interp_on": W.Checkbox(value=s.interp_seed is not None, description="interpolate"),
            "interp_seed": seed_box(s.interp_seed, "to seed"),
            "t": W.FloatSlider(value=s.t, min=0.0, max=1.0, step=0.02, description="t"),
            "save_name": W.Text(value="explorer", description="file name"),
            "save_button": W.Button(description=self._save_label("explorer")),
            "image": W.Image(value=png_bytes(self.image, size), format="png", width=size),
            "status": W.Label(value=self.describe()),
        }
        r = offset_range
        for name in self.directions:
            slider = W.FloatSlider(value=s.offsets[name], min=-r, max=r, step=0.1, description=name)
            c[f"offset:{name}"] = slider

        def observe(key: str, to_changes: Any) -> None:
            c[key].observe(lambda ch: self._apply(**to_changes(ch["new"])), names="value")

        observe("seed", lambda v: {"seed": v})
        observe("psi", lambda v: {"psi": v})
        observe("crossover", lambda v: {"crossover": v})
        observe("t", lambda v: {"t": v})
        observe("mix_on", lambda v: {"mix_seed": c["mix_seed"].value if v else None})
        observe("mix_seed", lambda v: {"mix_seed": v} if c["mix_on"].value else {})
        observe("interp_on", lambda v: {"interp_seed": c["interp_seed"].value if v else None})
        observe("interp_seed", lambda v: {"interp_seed": v} if c["interp_on"].value else {})
        for name in self.directions:
            observe(f"offset:{name}", lambda v, name=name: {"offsets": {name: v}})

        def on_save(_: Any) -> None:
            try:
                path = self.save(c["save_name"].value)
                # The file's name only: a full path runs past the page; the folder is
                # self.out_dir, which the notebook and the app state once.
                self.status = f"saved {path.name} (and its .json)"
            except (InvalidParameterError, OSError) as e:
                self.status = f"not saved: {e}"
            c["status"].value = self.describe()

        c["save_button"].on_click(on_save)

        # The button names the file a click writes, updated by the kernel when it has the
        # typed name: a click before the label changes would still save under the old name,
        # and the label says so, instead of the race being invisible.
        def on_name(change: Any) -> None:
            c["save_button"].description = self._save_label(change["new"])

        c["save_name"].observe(on_name, names="value")
        self.controls = c
        self._image_size = size
        offsets = [c[f"offset:{name}"] for name in self.directions]
        return W.VBox(
            [
                W.HBox([c["image"], W.VBox([c["seed"], c["psi"], *offsets])]),
                W.HBox([c["mix_on"], c["mix_seed"], c["crossover"]]),
                W.HBox([c["interp_on"], c["interp_seed"], c["t"]]),
                W.HBox([c["save_name"], c["save_button"]]),
                c["status"],
            ]
        )
