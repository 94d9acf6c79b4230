"""Image degradations for the metric validity ladder and for the toy net's realness branch.

Every function takes uint8 images (N, 3, H, W) in [0, 255] and returns new uint8 images of
the same shape; randomness comes only from the ``torch.Generator`` (or seed) passed in, so
the global RNG is never read or moved.

Two uses, kept apart on purpose:

- ``ssd_lib.metrics.ladder`` applies one fixed instance of each (blur sigma 1, JPEG quality
  20, 16 x 16 patches shuffled, hue turned by 150 degrees, Gaussian colour blobs, uniform
  noise) to held-out real images;
- ``ssd_lib.metrics.toy`` trains its realness branch on *other* members of some of these
  families (``training_negatives``: 8 and 32 pixel patches shuffled at 64 px, channel swaps
  and gains, low-resolution colour fields, noise, spliced faces). Blur and JPEG are never
  shown to it, and no ladder rung is an exact training negative, so the ladder also tests
  how far the realness branch generalises.
"""

from __future__ import annotations

import io
import math

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def _check(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images must be uint8 (N, 3, H, W) in [0, 255], got {images.dtype} "
            f"{tuple(images.shape)}"
        )
    return images


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float in [0, 1] -> uint8, clipped and rounded."""
    return (x.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with standard deviation ``sigma`` pixels (kernel radius
    ceil(3 sigma), reflected borders)."""
    _check(images)
    if sigma <= 0:
        raise ValueError(f"sigma={sigma!r} must be positive")
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = images.float() / 255.0
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return _to_uint8(x)


def jpeg(images: torch.Tensor, quality: int) -> torch.Tensor:
    """Each image saved as a JPEG of ``quality`` (1-95, Pillow's encoder, 4:2:0 chroma
    subsampling) and decoded again."""
    _check(images)
    if not 1 <= int(quality) <= 95:
        raise ValueError(f"quality={quality!r} must be in 1..95")
    out = []
    for img in images.permute(0, 2, 3, 1).numpy():
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
        buf.seek(0)
        out.append(np.asarray(Image.open(buf).convert("RGB")))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()


def shuffle_patches(
    images: torch.Tensor, patch: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Cut each image into ``patch`` x ``patch`` tiles and put them back in a random order
    (its own permutation per image; never the identity when there are 2 or more tiles)."""
    _check(images)
    n, c, h, w = images.shape
    if patch < 1 or h % patch or w % patch:
        raise ValueError(f"patch={patch} must divide the image size {h}x{w}")
    gh, gw = h // patch, w // patch
    tiles = images.reshape(n, c, gh, patch, gw, patch).permute(0, 2, 4, 1, 3, 5)
    tiles = tiles.reshape(n, gh * gw, c, patch, patch)
    m = gh * gw
    perms = []
    for _ in range(n):
        p = torch.randperm(m, generator=generator)
        if m > 1 and bool((p == torch.arange(m)).all()):
            p = p.roll(1)
        perms.append(p)
    idx = torch.stack(perms)
    out = tiles[torch.arange(n)[:, None], idx]
    out = out.reshape(n, gh, gw, c, patch, patch).permute(0, 3, 1, 4, 2, 5)
    return out.reshape(n, c, h, w).contiguous()


def rotate_hue(images: torch.Tensor, degrees: float) -> torch.Tensor:
    """Turn every colour about the grey axis of RGB space by ``degrees`` (a hue shift that
    keeps each pixel's mean brightness; greys stay grey)."""
    _check(images)
    a = math.radians(degrees)
    u = torch.full((3,), 1.0 / math.sqrt(3.0))
    cross = torch.tensor([[0.0, -u[2], u[1]], [u[2], 0.0, -u[0]], [-u[1], u[0], 0.0]])
    rot = math.cos(a) * torch.eye(3) + math.sin(a) * cross + (1 - math.cos(a)) * torch.outer(u, u)
    x = torch.einsum("ij,njhw->nihw", rot, images.float() / 255.0)
    return _to_uint8(x)


def gaussian_blobs(
    n: int, size: int = 64, n_blobs: int = 4, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``n`` images of smooth colour blobs: a random flat background with ``n_blobs``
    Gaussian bumps of random colour, position and width (6-20 pixels) laid over it; no
    face, no edges."""
    g = generator
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    yy, xx = yy.float(), xx.float()
    x = torch.rand(n, 3, 1, 1, generator=g).expand(n, 3, size, size).clone()
    for _ in range(n_blobs):
        cx = torch.rand(n, 1, 1, generator=g) * size
        cy = torch.rand(n, 1, 1, generator=g) * size
        s = 6.0 + 14.0 * torch.rand(n, 1, 1, generator=g)
        alpha = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s**2)).unsqueeze(1)
        colour = torch.rand(n, 3, 1, 1, generator=g)
        x = x * (1 - alpha) + colour * alpha
    return _to_uint8(x)


def uniform_noise(n: int, size: int = 64, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` images of independent uniform noise in every pixel and channel."""
    return torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)


# ---- the realness head's training negatives (other members of the same families) --------


def _colour_fields(n: int, size: int, g: torch.Generator) -> torch.Tensor:
    """Low-resolution random colour fields (2x2 to 6x6) upsampled bicubically: smooth blobs."""
    out = torch.empty(n, 3, size, size)
    res = torch.randint(2, 7, (n,), generator=g)
    for r in res.unique().tolist():
        idx = (res == r).nonzero().squeeze(1)
        low = torch.rand(len(idx), 3, r, r, generator=g)
        out[idx] = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False)
    return _to_uint8(out)


def _channel_swap(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A non-identity permutation of the colour channels and a random gain per channel."""
    perms = [(0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]
    pick = torch.randint(0, len(perms), (len(images),), generator=g)
    x = images.float() / 255.0
    out = torch.stack([x[i, list(perms[int(p)])] for i, p in enumerate(pick)])
    gain = 0.6 + 0.8 * torch.rand(len(images), 3, 1, 1, generator=g)
    return _to_uint8(out * gain)


def _splice(images: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each image with a rectangle (a quarter to a half of each side) from another image of
    the batch pasted at a random place: locally real, globally broken (two muzzles, an ear
    of the wrong colour, a head cut off)."""
    n, _, h, w = images.shape
    out = images.clone()
    donor = (torch.arange(n) + torch.randint(1, max(n, 2), (1,), generator=g)) % n
    for i in range(n):
        rh = int(torch.randint(h // 4, h // 2 + 1, (1,), generator=g))
        rw = int(torch.randint(w // 4, w // 2 + 1, (1,), generator=g))
        sy, sx = (
            int(torch.randint(0, d - r + 1, (1,), generator=g)) for d, r in ((h, rh), (w, rw))
        )
        ty, tx = (
            int(torch.randint(0, d - r + 1, (1,), generator=g)) for d, r in ((h, rh), (w, rw))
        )
        out[i, :, ty : ty + rh, tx : tx + rw] = images[donor[i], :, sy : sy + rh, sx : sx + rw]
    return out


NEGATIVE_KINDS = ("shuffle_small", "shuffle_large", "channels", "fields", "noise", "splice")


def training_negatives(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One degraded copy of each image, each of a random kind from ``NEGATIVE_KINDS``:
    patches of 1/8 or 1/2 of the image's side shuffled (8 or 32 pixels at 64 px), colour
    channels swapped with gains, smooth low-resolution colour fields (no face at all),
    uniform or Gaussian noise, or a spliced face."""
    _check(images)
    n, _, h, _ = images.shape
    kind = torch.randint(0, len(NEGATIVE_KINDS), (n,), generator=generator)
    out = torch.empty_like(images)
    for k, name in enumerate(NEGATIVE_KINDS):
        idx = (kind == k).nonzero().squeeze(1)
        if len(idx) == 0:
            continue
        src = images[idx]
        if name == "shuffle_small":
            out[idx] = shuffle_patches(src, max(1, h // 8), generator)
        elif name == "shuffle_large":
            out[idx] = shuffle_patches(src, max(1, h // 2), generator)
        elif name == "channels":
            out[idx] = _channel_swap(src, generator)
        elif name == "fields":
            out[idx] = _colour_fields(len(idx), h, generator)
        elif name == "noise":
            mean = torch.rand(len(idx), 3, 1, 1, generator=generator)
            spread = 0.1 + 0.4 * torch.rand(len(idx), 1, 1, 1, generator=generator)
            z = torch.randn(src.shape, generator=generator)
            out[idx] = _to_uint8(mean + spread * z)
        else:
            out[idx] = _splice(src, generator)
    return out
