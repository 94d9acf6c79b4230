"""Procedural cartoon dog faces: an offline stand-in for the AFHQ dog split.

Every image is rendered from a seed, so the dataset needs no download and nothing but code is
committed. Each image comes with its ground-truth factors (fur colour, ear states, ...), which
the analysis code uses to train factor-prediction CNNs and linear probes and to count factor
combinations in generated samples.

Rendering: each face part is a signed-distance function (SDF) evaluated over the pixel grid in
one batched torch computation; a part's coverage falls from 1 to 0 over one pixel across its
edge, which anti-aliases every edge without supersampling. Parts are composited back to front.

Coordinates: x to the right, y up, both in [-1, 1] across the image. "Left" and "right" always
mean the viewer's left and right (image columns), not the dog's.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ssd_lib.data.cache import (
    CacheError,
    ImageSplit,
    PreparedDataset,
    dataset_lock,
    is_prepared,
    load_if_intact,
    load_prepared,
    read_manifest,
    write_prepared,
)
from ssd_lib.utils.images import float_to_uint8
from ssd_lib.utils.progress import progress_bar as tqdm
from ssd_lib.utils.validate import check_int, check_seed

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1  # bump whenever the images for a given seed change
DEFAULT_N_TRAIN, DEFAULT_N_VAL, DEFAULT_SIZE = 4739, 500, 64  # the AFHQ dog split
_CHUNK = 256  # images rendered at once: ~20 (256, 64, 64) float32 buffers, a few tens of MB
_SPLIT_STREAMS = {"train": 0, "val": 1}  # separate seed streams, so val never repeats train
_FACE_SCALE = 1.38  # face units -> half-image units; the face fills the frame like AFHQ crops
_FACE_Y = 0.10  # the head centre sits this far below the image centre (half-image units)

FUR_COLOURS = {
    "cream": (0.93, 0.84, 0.66),
    "tan": (0.80, 0.57, 0.32),
    "brown": (0.50, 0.31, 0.17),
    "black": (0.17, 0.15, 0.14),
    "grey": (0.56, 0.56, 0.58),
    "white": (0.96, 0.95, 0.92),
}
EYE_COLOURS = {
    "brown": (0.36, 0.20, 0.08),
    "amber": (0.85, 0.56, 0.14),
    "blue": (0.36, 0.62, 0.92),
    "hazel": (0.45, 0.55, 0.25),
}
BACKGROUND_COLOURS = {
    "sky": (0.66, 0.80, 0.93),
    "mint": (0.69, 0.88, 0.75),
    "lavender": (0.80, 0.75, 0.91),
    "peach": (0.97, 0.79, 0.69),
    "lemon": (0.96, 0.92, 0.64),
    "teal": (0.42, 0.63, 0.66),
}


def _binary(meaning: str) -> dict:
    return {"kind": "binary", "n_classes": 2, "meaning": meaning}


def _categorical(palette: dict, meaning: str) -> dict:
    n = len(palette)
    return {"kind": "categorical", "n_classes": n, "values": list(palette), "meaning": meaning}


def _continuous(low: float, high: float, meaning: str) -> dict:
    return {"kind": "continuous", "range": [low, high], "meaning": meaning}


# One entry per factor column, in column order. Binary and categorical factors are stored as
# integer-valued floats; continuous ones in the unit given by "range" (degrees for rotation).
FACTORS: dict[str, dict] = {
    "fur_colour": _categorical(FUR_COLOURS, "base fur colour (palette index)"),
    "fur_brightness": _continuous(0.0, 1.0, "fur brightness jitter: 0 -> x0.88, 1 -> x1.12"),
    "head_width": _continuous(0.0, 1.0, "head half-width: 0 -> 28 %, 1 -> 37 % of image width"),
    "left_ear_up": _binary("viewer's-left ear: 1 pointed up, 0 floppy down"),
    "right_ear_up": _binary("viewer's-right ear: 1 pointed up, 0 floppy down"),
    "eye_colour": _categorical(EYE_COLOURS, "iris colour (palette index)"),
    "muzzle_size": _continuous(0.0, 1.0, "muzzle and mouth scale: 0 -> x0.8, 1 -> x1.2"),
    "head_rotation_deg": _continuous(-20.0, 20.0, "in-plane face rotation, + = anticlockwise"),
    "background_colour": _categorical(BACKGROUND_COLOURS, "background colour (palette index)"),
    "eye_patch": _binary("1: a contrasting patch around the viewer's-right eye"),
}
FACTOR_NAMES: list[str] = list(FACTORS)
_COL = {name: i for i, name in enumerate(FACTOR_NAMES)}


def sample_factors(n: int, rng: np.random.Generator) -> np.ndarray:
    """Draw ``n`` independent factor vectors: float32 (n, F), columns as in ``FACTOR_NAMES``.

    Categorical and binary factors are uniform over their classes (eye patch: 30 %); continuous
    ones are uniform over their range. The two ears are independent, so all four combos occur.
    """
    n = check_int("n", n, 0)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    out = np.empty((n, len(FACTOR_NAMES)), np.float32)
    for name, desc in FACTORS.items():  # fixed column order keeps the stream reproducible
        col = _COL[name]
        if name == "eye_patch":
            out[:, col] = rng.random(n) < 0.3
        elif desc["kind"] in ("categorical", "binary"):
            out[:, col] = rng.integers(0, desc["n_classes"], n)
        else:
            out[:, col] = rng.uniform(*desc["range"], n)
    return out


def _check_factors(factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    f = torch.as_tensor(np.asarray(factors, dtype=np.float32))
    if f.ndim != 2 or f.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must have shape (N, {len(FACTOR_NAMES)}), got {tuple(f.shape)}")
    for name, desc in FACTORS.items():
        v = f[:, _COL[name]]
        if desc["kind"] == "continuous":
            lo, hi = desc["range"]
            bad = ~((v >= lo) & (v <= hi))  # also catches NaN
            allowed = f"[{lo}, {hi}]"
        else:
            bad = (v != v.round()) | (v < 0) | (v >= desc["n_classes"])
            allowed = f"integers 0..{desc['n_classes'] - 1}"
        if bad.any():
            raise ValueError(
                f"factors[:, {_COL[name]}] ({name}) has value {v[bad][0].item()!r}; "
                f"allowed: {allowed}"
            )
    return f


# Signed distance functions: negative inside, in the units of the x, y they are given.


def _sd_ellipse(x: torch.Tensor, y: torch.Tensor, rx, ry) -> torch.Tensor:
    # first-order approximation; exact on the boundary, which is all anti-aliasing needs
    ux, uy = x / rx, y / ry
    k0 = torch.hypot(ux, uy)
    k1 = torch.hypot(ux / rx, uy / ry).clamp_min(1e-6)
    return k0 * (k0 - 1.0) / k1


def _sd_circle(x: torch.Tensor, y: torch.Tensor, r) -> torch.Tensor:
    return torch.hypot(x, y) - r


def _sd_triangle(x: torch.Tensor, y: torch.Tensor, pts: list[tuple]) -> torch.Tensor:
    # exact distance to a triangle: nearest of the three edges, sign from the edge half-planes
    (x0, y0), (x1, y1), (x2, y2) = pts
    winding = (x1 - x0) * (y2 - y0) - (y1 - y0) * (x2 - x0)
    dist2, inside = None, None
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1], strict=True):
        ex, ey = bx - ax, by - ay
        vx, vy = x - ax, y - ay
        t = ((vx * ex + vy * ey) / (ex * ex + ey * ey)).clamp(0.0, 1.0)
        d2 = (vx - ex * t) ** 2 + (vy - ey * t) ** 2
        side = (ex * vy - ey * vx) * winding >= 0
        dist2 = d2 if dist2 is None else torch.minimum(dist2, d2)
        inside = side if inside is None else inside & side
    d = torch.sqrt(dist2)
    return torch.where(inside, -d, d)


def _window(cx: float, cy: float, r: float, size: int) -> tuple[slice, slice]:
    """Pixel rows and columns that hold the face-frame disc (cx, cy, r) at every rotation.

    Small parts (eyes, nose, mouth) are drawn only inside their window, which saves most of
    the arithmetic; outside it their coverage would be exactly zero anyway.
    """
    xs, ys = [], []
    for deg in np.linspace(*FACTORS["head_rotation_deg"]["range"], 17):
        c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
        xs.append((c * cx - s * cy) * _FACE_SCALE)
        ys.append((s * cx + c * cy) * _FACE_SCALE - _FACE_Y)
    m = r * _FACE_SCALE + 4.0 / size  # two pixels spare for the ramp and the sampled arc
    lo = lambda v: max(0, math.floor((v + 1.0) * size / 2))  # noqa: E731
    hi = lambda v: min(size, math.ceil((v + 1.0) * size / 2))  # noqa: E731
    return slice(lo(-max(ys) - m), hi(-min(ys) + m)), slice(lo(min(xs) - m), hi(max(xs) + m))


def _rotate(x: torch.Tensor, y: torch.Tensor, deg) -> tuple[torch.Tensor, torch.Tensor]:
    """Coordinates of image points in a frame rotated anticlockwise by ``deg``."""
    t = torch.as_tensor(deg) * (math.pi / 180.0)
    c, s = torch.cos(t), torch.sin(t)
    return c * x + s * y, -s * x + c * y


def _texture(n: int, start: int, seed: int, size: int) -> torch.Tensor:
    """Fur texture (n, 1, size, size), mean ~0: soft blotches plus per-pixel grain.

    Image ``start + i`` draws from its own stream (seed, index), so a face's texture does not
    depend on which chunk or batch it is rendered in.
    """
    low = np.empty((n, 1, 6, 6), np.float32)
    grain = np.empty((n, 1, size, size), np.float32)
    for i in range(n):
        rng = np.random.default_rng([seed, start + i])
        low[i] = rng.standard_normal((1, 6, 6), np.float32)
        grain[i] = rng.standard_normal((1, size, size), np.float32)
    blotch = F.interpolate(
        torch.from_numpy(low), size=(size, size), mode="bicubic", align_corners=False
    )
    return 0.07 * blotch + 0.035 * torch.from_numpy(grain)


def _rgb(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float32).view(1, 3, 1, 1)


def _render_chunk(f: torch.Tensor, texture: torch.Tensor, size: int) -> torch.Tensor:
    """Render factors (B, F) with texture (B, 1, S, S) to float RGB (B, 3, S, S) in [0, 1]."""

    def col(name: str) -> torch.Tensor:  # (B, 1, 1), broadcasts over the pixel grid
        return f[:, _COL[name]].view(-1, 1, 1)

    def pick(palette: dict, name: str) -> torch.Tensor:  # (B, 3, 1, 1)
        table = torch.tensor(list(palette.values()), dtype=torch.float32)
        return table[f[:, _COL[name]].long()].view(-1, 3, 1, 1)

    px = 2.0 / size  # one pixel in half-image units
    t = (torch.arange(size, dtype=torch.float32) + 0.5) * px - 1.0
    gx, gy = t.view(1, 1, size), -t.view(1, size, 1)
    # face frame: origin at the head centre, a little below the image centre, rotated with the
    # head; all shapes below are in face units, and the coverage ramp is one pixel wide in them
    x, y = _rotate(gx / _FACE_SCALE, (gy + _FACE_Y) / _FACE_SCALE, col("head_rotation_deg"))
    ramp = px / _FACE_SCALE

    bg = pick(BACKGROUND_COLOURS, "background_colour")
    img = (bg * (1.06 - 0.06 * (gy.unsqueeze(1) + 1.0))).clamp(0.0, 1.0)  # soft vertical fade
    img = img.expand(-1, 3, size, size).contiguous()

    def region(cx: float, cy: float, r: float, *more: torch.Tensor) -> list[torch.Tensor]:
        """Views of x, y, the image, the texture (and ``more``) inside the window of a part."""
        rows, cols = _window(cx, cy, r, size)
        return [t[..., rows, cols] for t in (x, y, img, texture, *more)]

    def paint(target: torch.Tensor, sd: torch.Tensor, colour: torch.Tensor, weight=1.0) -> None:
        """Composite ``colour`` over ``target`` where the SDF ``sd`` is negative."""
        alpha = (0.5 - sd / ramp).clamp_(0.0, 1.0).unsqueeze(1)  # one-pixel coverage ramp
        target.lerp_(colour, alpha if isinstance(weight, float) else alpha * weight)

    fur = pick(FUR_COLOURS, "fur_colour") * (0.88 + 0.24 * col("fur_brightness").unsqueeze(1))
    # multiplicative texture alone would vanish on black fur, so add a little on top
    fur_tex = (fur * (1.0 + texture) + 0.075 * texture).clamp(0.0, 1.0)
    is_black = (fur < 0.3).all(1, keepdim=True)
    outline = torch.where(is_black, torch.full_like(fur, 0.05), fur * 0.45)
    lw = 0.035  # outline width
    hw, hh = 0.40 + 0.14 * col("head_width"), 0.42  # head half-width, half-height
    sides = ((-1.0, "left_ear_up"), (1.0, "right_ear_up"))

    # pointed ears go behind the head: a rounded triangle on the upper side, tip tilted outward
    for side, name in sides:
        up = col(name).unsqueeze(1)
        tri = [(side * hw * 0.98, 0.06), (side * hw * 0.16, 0.37), (side * (hw * 0.8 + 0.05), 0.74)]
        sd = _sd_triangle(x, y, tri) - 0.04
        paint(img, sd - lw, outline, up)
        paint(img, sd, fur_tex * 0.8, up)
        cx, cy = sum(p[0] for p in tri) / 3, sum(p[1] for p in tri) / 3
        inner = [(cx + 0.45 * (p[0] - cx), cy + 0.45 * (p[1] - cy)) for p in tri]
        paint(img, _sd_triangle(x, y, inner), _rgb(0.89, 0.60, 0.62), up)

    # head: a round skull joined with wider, flatter cheeks, which reads as a dog's jowls
    head = torch.minimum(_sd_ellipse(x, y, hw, hh), _sd_ellipse(x, y + 0.17, hw * 1.06, hh * 0.62))
    paint(img, head - lw, outline)
    paint(img, head, fur_tex)

    eye_x, eye_y = 0.20, 0.07
    xw, yw, iw, tw, head_w = region(eye_x + 0.01, eye_y + 0.02, 0.18, head)
    # the patch is clipped to the head so that it never spills onto the background
    patch = torch.maximum(_sd_ellipse(xw - eye_x - 0.01, yw - eye_y - 0.02, 0.17, 0.15), head_w)
    light_fur = fur.mean(1, keepdim=True) >= 0.45
    patch_colour = torch.where(light_fur, _rgb(0.28, 0.17, 0.09), _rgb(0.95, 0.90, 0.80))
    paint(iw, patch, (patch_colour * (1.0 + tw)).clamp(0.0, 1.0), col("eye_patch").unsqueeze(1))

    ms = 0.80 + 0.40 * col("muzzle_size")
    xw, yw, iw, tw = region(0.0, -0.20, 0.27)
    muzzle_fill = (0.55 * fur + 0.45 * _rgb(0.98, 0.95, 0.88)) * (1.0 + 0.5 * tw)
    paint(iw, _sd_ellipse(xw, yw + 0.20, 0.21 * ms, 0.15 * ms), muzzle_fill.clamp(0.0, 1.0))

    # floppy ears go in front of the head: a tilted ellipse over each side, tip swung outward
    for side, name in sides:
        xw, yw, iw, tw = region(side * 0.43, 0.15, 0.40)
        ex, ey = _rotate(xw - side * hw * 0.90, yw - 0.15, side * 18.0)
        sd = _sd_ellipse(ex, ey, 0.14, 0.27)
        ear_colour = (fur * (1.0 + tw) + 0.075 * tw).clamp(0.0, 1.0) * 0.68
        down = 1.0 - col(name).unsqueeze(1)
        paint(iw, sd - lw, outline, down)
        paint(iw, sd, ear_colour, down)

    iris = pick(EYE_COLOURS, "eye_colour")
    black, white = _rgb(0.04, 0.04, 0.04), _rgb(0.97, 0.97, 0.97)
    for side in (-1.0, 1.0):
        xw, yw, iw, _ = region(side * eye_x, eye_y, 0.10)
        ex, ey = xw - side * eye_x, yw - eye_y
        paint(iw, _sd_ellipse(ex, ey, 0.085, 0.095), black)
        paint(iw, _sd_ellipse(ex, ey, 0.066, 0.076), iris)
        paint(iw, _sd_circle(ex, ey + 0.005, 0.036), black)
        paint(iw, _sd_circle(ex - 0.022, ey - 0.028, 0.019), white)  # catch-light

    xw, yw, iw, _ = region(0.0, -0.20, 0.27)
    nose_y = -0.12 + 0.03 * (ms - 1.0)
    paint(iw, _sd_ellipse(xw, yw - nose_y, 0.085, 0.055), black)
    paint(iw, _sd_ellipse(xw + 0.025, yw - nose_y - 0.022, 0.026, 0.012), _rgb(0.55, 0.55, 0.55))
    # mouth: a tongue, a short line down from the nose and two arcs (lower half-circles)
    top = nose_y - 0.05
    tongue = _sd_ellipse(xw, yw - (top - 0.13), 0.045, 0.055)
    paint(iw, torch.maximum(tongue, yw - (top - 0.09)), _rgb(0.90, 0.42, 0.48))
    paint(iw, torch.maximum(xw.abs() - 0.008, (yw - (top - 0.04)).abs() - 0.045), black)
    r = 0.055 * ms
    for side in (-1.0, 1.0):
        arc = _sd_circle(xw - side * r, yw - (top - 0.085 + r), r).abs() - 0.010
        paint(iw, torch.maximum(arc, yw - (top - 0.085 + r)), black)
    return img


def render_faces(
    factors: np.ndarray | torch.Tensor, seed: int, size: int = 64, show_progress: bool = False
) -> torch.Tensor:
    """Render one dog face per factor row (N, F) -> uint8 (N, 3, size, size) in [0, 255].

    Deterministic given ``factors`` and ``seed``; the seed only drives the fur texture, drawn
    per row from the stream (seed, row index). The splits pass 64-bit texture seeds derived
    from the dataset seed (``_stream_seeds``), hence the wider range than ``check_seed``'s.
    """
    f = _check_factors(factors)
    seed = check_int("seed", seed, 0, 2**64 - 1)
    size = check_int("size", size, 16)
    out = torch.empty((f.shape[0], 3, size, size), dtype=torch.uint8)
    starts = range(0, f.shape[0], _CHUNK)
    for start in tqdm(starts, desc="rendering dogs", unit="chunk", disable=not show_progress):
        chunk = f[start : start + _CHUNK]
        tex = _texture(chunk.shape[0], start, seed, size)
        with torch.no_grad():
            out[start : start + _CHUNK] = float_to_uint8(_render_chunk(chunk, tex, size), "[0, 1]")
    return out


def _stream_seeds(seed: int, split: str) -> tuple[np.random.Generator, int]:
    """Factor RNG and texture seed for one split, from independent child streams of ``seed``."""
    factor_ss, texture_ss = np.random.SeedSequence([seed, _SPLIT_STREAMS[split]]).spawn(2)
    return np.random.default_rng(factor_ss), int(texture_ss.generate_state(1, np.uint64)[0])


def generate_split(
    n: int, seed: int, size: int = 64, *, split: str = "train", show_progress: bool = False
) -> ImageSplit:
    """Sample and render ``n`` faces: uint8 images (n, 3, size, size) and float32 factors (n, F).

    ``split`` picks an independent seed stream, so "train" and "val" with one seed differ.
    """
    n = check_int("n", n, 1)
    seed = check_seed("seed", seed)
    size = check_int("size", size, 16)
    if split not in _SPLIT_STREAMS:
        raise ValueError(f"split={split!r} must be one of {list(_SPLIT_STREAMS)}")
    rng, texture_seed = _stream_seeds(seed, split)
    factors = sample_factors(n, rng)
    images = render_faces(factors, texture_seed, size, show_progress=show_progress)
    return ImageSplit(images, torch.from_numpy(factors), list(FACTOR_NAMES))


def dataset_name(seed: int, n_train: int, n_val: int, size: int) -> str:
    """Cache name: "embedded" for the defaults, otherwise one that encodes every argument."""
    if (seed, n_train, n_val, size) == (0, DEFAULT_N_TRAIN, DEFAULT_N_VAL, DEFAULT_SIZE):
        return "embedded"
    return f"embedded-s{seed}-n{n_train}-{n_val}-{size}"


def _cache_matches(name: str, root: str | Path | None, source: dict) -> bool:
    """Whether a prepared ``name`` exists and was made from ``source`` (logs why not)."""
    if not is_prepared(name, root):
        return False
    try:
        cached = read_manifest(name, root).get("source")
    except CacheError as err:
        log.warning("cached dataset %s is unusable (%s); regenerating", name, err)
        return False
    if cached != source:
        log.warning("cached dataset %s was made with other settings; regenerating", name)
    return cached == source


def prepare_embedded(
    root: str | Path | None = None,
    seed: int = 0,
    n_train: int = DEFAULT_N_TRAIN,
    n_val: int = DEFAULT_N_VAL,
    size: int = DEFAULT_SIZE,
    force: bool = False,
    show_progress: bool = True,
) -> PreparedDataset:
    """Generate (or load from the cache under ``root``) the embedded dog dataset.

    ``n_val=0`` writes no val split. A cached copy is reused only when its manifest's source
    (seed, counts, size, generator version) matches and its files match their hashes (a
    damaged copy is regenerated, with a warning); ``force=True`` always regenerates. Two
    processes preparing the same dataset at once render it once.
    """
    seed = check_seed("seed", seed)
    n_train = check_int("n_train", n_train, 1)
    n_val = check_int("n_val", n_val, 0)
    size = check_int("size", size, 16)
    name = dataset_name(seed, n_train, n_val, size)
    source = {
        "kind": "embedded",
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "size": size,
        "generator_version": GENERATOR_VERSION,
    }
    with dataset_lock(name, root):  # a second process waits, then loads this one's result
        if not force and _cache_matches(name, root, source):
            cached = load_if_intact(name, root)  # a damaged cache is simply made again
            if cached is not None:
                log.info("loading cached dataset %s", name)
                return cached
        log.info("rendering dataset %s: %d train + %d val at %dpx", name, n_train, n_val, size)
        splits = {
            "train": generate_split(n_train, seed, size, split="train", show_progress=show_progress)
        }
        if n_val:
            splits["val"] = generate_split(
                n_val, seed, size, split="val", show_progress=show_progress
            )
        write_prepared(name, splits, source=source, root=root)
        return load_prepared(name, root)
