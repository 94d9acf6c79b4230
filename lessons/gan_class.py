# The source of the 90-minute class on GANs around SSD (Spectral StyleDCGAN).
# Build the two notebooks (lessons/student/, lessons/teacher/) and execute the teacher's with:
#     make lesson
# Cells tagged "solution" become stubs in the student notebook; "teacher" cells (expected
# answers, notes) appear in the teacher notebook only. See docs/teaching.md.

# %% [markdown]
# # GANs in 90 minutes, with SSD
#
# In this class you will play a real-or-fake game, write the pieces of a small StyleGAN-like
# generator yourself, train it for a few minutes with and without spectral normalisation,
# explore what its latent space does, and measure how close its images are to real ones.
# The model is SSD ("Spectral StyleDCGAN"): a StyleGAN-like generator (a mapping network
# and AdaIN) against a DCGAN-like discriminator whose three middle convolutions are
# spectrally normalised, trained on 64x64 dog faces.
#
# | part | what | planned time |
# |---|---|---|
# | warm-up | real or fake? | 5 min |
# | 1 | what a GAN is: the game, the losses, reading the curves | 15 min |
# | 2 | build SSD's pieces: mapping, AdaIN, spectral norm | 20 min |
# | 3 | train on from a snapshot, then remove spectral norm | 15 min |
# | 4 | read the latent space: truncation, Z against W | 15 min |
# | 5 | measure: FD and KID, and the class's quiz | 15 min |
# | wrap-up | what the paper claims, what we saw | 5 min |
#
# The times are a plan for a 2-core laptop, not a measurement. Every exercise is a function
# you complete; the cell after it checks your function against the project's own code and
# answers in one line. Before each experiment you will be asked to **predict** the result:
# write your guess down before you run the cell.

# %% tags=["parameters"]
TRAIN_STEPS = 300  # part 3: at most this many steps per training run...
TRAIN_SECONDS = 120  # ...and at most this many seconds (two runs: SSD with and without SN)
QUIZ_PER_SOURCE = 12  # warm-up: images per source (real, and each published model)
QUIZ_EXPOSURES_MS = [250, 2000]  # how long each image stays on screen
QUIZ_FOLDER = "quiz_results"  # where this laptop saves its answers
CLASS_FOLDER = "quiz_results"  # part 5: the folder of everyone's answers, once collected
PPL_PAIRS = 200  # part 4: pairs of codes for the path-length measurement
N_FEATURES = 300  # part 5: images per feature set
SEED = 0
DEVICE = "auto"

# %%
import numpy as np
import torch

import ssd_lib.teach as teach
from ssd_lib.data import prepare_dataset
from ssd_lib.experiments.published import load_key
from ssd_lib.generation.sampling import generate, sample_z
from ssd_lib.reporting.plots import grid_figure, loss_figure, strips_figure
from ssd_lib.teach import lesson
from ssd_lib.training.health import generator_verdict

ds = prepare_dataset("embedded")  # the procedural dog faces (cached after the first time)
shuffled = torch.randperm(len(ds.train), generator=torch.Generator().manual_seed(SEED))
reference = ds.train.images[shuffled[:256]]  # real dogs: the yardstick of the sample verdicts
runs = lesson.published_runs(["ssd", "no_sn", "dcgan", "stylegan"])
ssd = runs["ssd"]  # SSD trained for the paper's 20 epochs (2,980 steps), seed 42
G = ssd.load_generator()
print("published runs used here:", ", ".join(r.key for r in runs.values()))
print(lesson.missing_note(["no_sn"], runs) or "all the runs this lesson uses are published")

# %% [markdown]
# ## Warm-up: real or fake? (planned: 5 min on a 2-core laptop)
#
# Before anything is explained: you will see dog faces, some real (from the held-out part of
# the training data), some drawn by the published models. Each one is shown briefly, then
# hidden. Press "next image", look, then answer "real" or "fake". Your answers are saved
# anonymously in `quiz_results/`; in part 5 we compare the class's answers with a published
# human study (LAPGAN, 2015).

# %%
from ssd_lib.teach.quiz import Quiz

pool = lesson.quiz_pool(ds, runs, n_per_source=QUIZ_PER_SOURCE, seed=SEED)
quiz = Quiz(pool, out_dir=QUIZ_FOLDER, exposure_ms=QUIZ_EXPOSURES_MS)
print(f"{len(pool)} images from: real, {', '.join(runs)}; answers go to {quiz.path}")
quiz.widget()

# %% [markdown] tags=["teacher"]
# **Teacher.** Start the quiz before saying anything about what the images are or what to
# look for; LAPGAN's volunteers were not trained either. Ask students to copy their
# `quiz_results/quiz_<id>.csv` to the shared place before part 5 (docs/teaching.md says how).
# Exposures under 250 ms are not reliable in a browser (the timing is not measured yet).

# %% [markdown]
# ## Part 1. What a GAN is (planned: 15 min on a 2-core laptop)
#
# A GAN is a game between two networks. The **generator** G turns a random code z into an
# image. The **discriminator** D looks at an image and outputs a probability: how sure it is
# that the image is real. In SSD, D's last layer is a sigmoid, so its outputs are
# probabilities in (0, 1), not logits.
#
# The original game (Goodfellow et al., 2014) is a minimax problem:
#
# $$\min_G \max_D \; \mathbb{E}_x[\log D(x)] + \mathbb{E}_z[\log(1 - D(G(z)))]$$
#
# D wants the first term large (say "real" to real images) and the second large too (say
# "fake", D near 0, to generated ones). G wants the second term small.
#
# Both sides are trained with **binary cross-entropy**. For a prediction p and a label y,
# BCE(p, y) = -[y log p + (1 - y) log(1 - p)], averaged over the batch. D's loss is
# BCE(D(x), 1) + BCE(D(G(z)), 0).
#
# For G, minimising log(1 - D(G(z))) works badly in practice. The **non-saturating** loss
# -log D(G(z)) = BCE(D(G(z)), 1) has the same goal (make D say "real") but a different slope.

# %% [markdown]
# **Predict.** Early in training D easily spots fakes: D(G(z)) is about 0.01. Which of the
# two generator losses, log(1 - D) or -log D, gives G the larger gradient there, and by
# roughly how much?

# %% [markdown] tags=["teacher"]
# **Expected.** -log D, by about a factor of 100. With respect to D's logit a, the gradient of
# log(1 - sigmoid(a)) is -sigmoid(a) = -0.01, and that of -log sigmoid(a) is
# -(1 - sigmoid(a)) = -0.99. The saturating loss is flat exactly where G is losing.

# %%
d_out = torch.tensor([0.001, 0.01, 0.1, 0.5, 0.9])
logit = torch.logit(d_out).requires_grad_(True)
saturating = torch.log(1 - torch.sigmoid(logit)).sum()
non_saturating = -torch.log(torch.sigmoid(logit)).sum()
(g_sat,) = torch.autograd.grad(saturating, logit)
(g_ns,) = torch.autograd.grad(non_saturating, logit)
for p, a, b in zip(d_out.tolist(), g_sat.tolist(), g_ns.tolist()):
    print(f"D(G(z)) = {p:5.3f}: gradient of log(1 - D) {a:+.3f}, of -log D {b:+.3f}")

# %% [markdown]
# ### Exercise: the generator's loss
# Write the non-saturating loss from D's outputs on a batch of fakes (probabilities, shape
# (N,)). It must be one number, a torch tensor (so that gradients flow).

# %% tags=["solution"] hint="the batch mean of -log D(G(z)), kept a torch tensor"
import torch


def g_loss(d_fake):
    """Non-saturating generator loss from D's outputs d_fake (N,) in (0, 1)."""
    return -torch.log(d_fake).mean()


# %%
teach.check_g_loss(g_loss)

# %% [markdown]
# ### Exercise: the discriminator's loss
# D gets a batch of real images and a batch of fakes: BCE(D(x), 1) + BCE(D(G(z)), 0), each
# averaged over its batch.

# %% tags=["solution"] hint="-mean log D(x) - mean log(1 - D(G(z)))"
import torch


def d_loss(d_real, d_fake):
    """Discriminator loss from D's outputs on reals and on fakes, both (N,) in (0, 1)."""
    return -torch.log(d_real).mean() - torch.log(1 - d_fake).mean()


# %%
teach.check_d_loss(d_loss)

# %% [markdown] tags=["teacher"]
# **Teacher.** A D that only guesses (0.5 everywhere) scores 2 ln 2 = 1.386. The SSD release
# halves this loss (`d_loss_scale = 0.5` in the paper preset), so in the published logs a
# guessing D shows 0.69. The check explains the halved version if a student writes it.

# %% [markdown]
# ### Reading the curves of a real run
# The published SSD run logged both losses at every one of its 2,980 steps.
#
# **Predict.** loss_g is -log D(G(z)) averaged over a batch. Over most of the run, is it
# closer to 0.7 (D cannot tell), to 3, or to 10? What would that say about D(G(z))?

# %% [markdown] tags=["teacher"]
# **Expected.** Typically around 6 to 8, with spikes above 10 (the cell below prints the run's
# own numbers; its median is about 7, and D's halved loss has a median of about 0.05).
# -log D(G(z)) = 7 means D(G(z)) is about e^-7 = 0.001: D rejects nearly every fake with
# confidence for most of the run, and yet the samples improve from epoch to epoch. That is the
# non-saturating loss doing its job: G still gets a strong gradient while it is losing. A
# GAN's losses do not measure quality; they measure the state of the game.

# %%
h = ssd.history()
median_g = np.median(h["loss_g"])
print(f"median loss_g: {median_g:.2f}, so a typical D(G(z)) is about {np.exp(-median_g):.4f}")
print(f"median loss_d (halved, as the release logs it): {np.median(h['loss_d']):.3f}")
worst = int(np.nanargmax(h["loss_g"]))
print(f"largest loss_g: {h['loss_g'][worst]:.1f} at step {int(h['step'][worst])}")
print("the trainer's collapse warnings for this run:", ssd.warnings() or "none")
loss_figure(h, ssd.label())

# %% [markdown]
# What to look for. In a run that keeps learning, both losses stay in a band, with spikes
# that recover. D may win most steps (in this run its loss is mostly small) but not for good:
# G's loss does not climb for ever. A run that collapses shows it in its samples (the same
# face again and again) and often in its curves: D's loss pinned near 0 for long stretches
# (G then learns little), G's loss climbing for good, or both oscillating wildly. The
# trainer watches the logs for two kinds of collapse (D winning outright for 100 steps; the
# samples' variety falling sharply) and records a warning. `ssd_lib.training.health.generator_verdict`
# looks at 256 samples the way a person would: are many of them near-duplicates of each
# other?
#
# Below: SSD's samples and that verdict, then the same generator trained against a
# discriminator **without** spectral normalisation (once that run is published).
#
# **Predict.** If a run collapsed, where would you see it most directly: in its loss curves,
# in the trainer's warnings, or in its samples? Do healthy-looking curves guarantee varied
# samples?

# %% [markdown] tags=["teacher"]
# **Expected.** Most directly in the samples: many codes giving the same few faces. The
# trainer's warnings catch the sharp cases; the losses are the least direct sign. Healthy
# curves do not guarantee varied samples: the verdict on SSD's own samples below is
# "partially collapsed" (every one of 256 samples has a near-duplicate, in 3 groups, with
# SEED = 0 on the development machine), while its curves and the trainer's warnings look
# healthy. The paper's claim (its Fig. 2, 4 and 6) is that
# without SN training becomes unstable and the samples collapse; whether this run shows it is
# for the class to read off the curves, the warnings and the samples; do not announce it in
# advance. If the no-SN run is not published yet, notebook `02_spectral_norm` has the
# comparison once it is.

# %%
samples_ssd = generate(G, sample_z(32, G.z_dim, SEED), ssd.config.real_range)
display(grid_figure(samples_ssd, "SSD, 20 epochs", ssd.label()))
print("SSD's samples:", generator_verdict(G, ssd.config.real_range, reference, seed=SEED))
if "no_sn" in runs:
    no_sn = runs["no_sn"]
    g_no_sn = no_sn.load_generator()
    print("the trainer's collapse warnings without SN:", no_sn.warnings() or "none")
    display(loss_figure(no_sn.history(), no_sn.label()))
    samples = generate(g_no_sn, sample_z(32, g_no_sn.z_dim, SEED), no_sn.config.real_range)
    display(grid_figure(samples, "SSD without spectral norm, 20 epochs", no_sn.label()))
    verdict = generator_verdict(g_no_sn, no_sn.config.real_range, reference, seed=SEED)
    print("samples without SN:", verdict)
else:
    print(lesson.missing_note(["no_sn"], runs))

# %% [markdown]
# ## Part 2. Build SSD's pieces (planned: 20 min on a 2-core laptop)
#
# SSD's generator:
#
# 1. a **mapping network** turns z (100 numbers) into a style vector w (100 numbers): first
#    z is divided by its length, then one Linear(100, 100) layer followed by LeakyReLU(0.2)
#    is applied four times (the release reuses the same layer all four times);
# 2. a learned constant (100 numbers: a 1x1 "image" with 100 channels) goes through five
#    transposed convolutions: the first makes it 4x4, each of the others doubles the size,
#    up to 64x64 RGB;
# 3. after each of the first four convolutions, **AdaIN** sets each channel's mean and
#    spread from w: it normalises every channel of every image on its own (instance
#    normalisation), then multiplies by a scale and adds a bias, both computed from w.
#
# ### Exercise (optional): the mapping network

# %% tags=["solution"] hint="divide each z by its length, then 4 x (x @ weight.T + bias, LeakyReLU 0.2)"
import torch.nn.functional as F


def mapping_forward(z, weight, bias, n_layers=4):
    """z (N, D) -> w (N, D): normalise each z to unit length, then apply the one Linear layer
    (weight (D, D), bias (D,)) followed by LeakyReLU(0.2), n_layers times."""
    x = z / z.norm(dim=1, keepdim=True)
    for _ in range(n_layers):
        x = F.leaky_relu(x @ weight.T + bias, negative_slope=0.2)
    return x


# %%
teach.check_mapping(mapping_forward)

# %% [markdown]
# ### Exercise: AdaIN
# x is a batch of feature maps (N, C, H, W); scale and bias are (N, C), one value per image
# and channel. Normalise each image's channel over its H x W positions (biased variance,
# epsilon 1e-5 inside the square root, as `InstanceNorm2d`), then scale and shift it.

# %% tags=["solution"] hint="instance-normalise x per sample and channel, then scale and shift"
import torch


def adain(x, scale, bias, eps=1e-5):
    """x (N, C, H, W); scale, bias (N, C) -> scale * instance_norm(x) + bias, (N, C, H, W)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    x_hat = (x - mean) / torch.sqrt(var + eps)
    return scale[:, :, None, None] * x_hat + bias[:, :, None, None]


# %%
teach.check_adain(adain)

# %% [markdown] tags=["teacher"]
# **Teacher.** Ask why the statistics are per image: with batch statistics one dog's colours
# would depend on the other dogs in the batch. Ask what the scale and bias do to a channel:
# after normalisation every channel has mean 0 and spread 1, so the style alone decides them.

# %% [markdown]
# ### Your pieces inside the real generator
# Below, the published SSD generator runs with **your** `adain` (and your `mapping_forward`,
# if you wrote it) in place of the library's modules; every weight is the published one.
#
# **Predict.** Will it draw the same dogs as the library's generator from the same codes?
# Exactly the same pixels?

# %% [markdown] tags=["teacher"]
# **Expected.** The same dogs; the largest pixel difference is 0, or 1 of 255 where another
# but equivalent formula rounds differently in float32. Equal results on the checks' small
# inputs and on the whole network are what "the same function" means in practice.

# %%
assembled = lesson.assemble(
    G, adain, mapping_forward, ssd.config.real_range, n=8, seed=SEED, label=ssd.label()
)
if assembled.student is not None:
    display(assembled.figure())
assembled

# %% [markdown]
# ### Exercise: spectral normalisation by power iteration
# Spectral normalisation divides a layer's weight W by its largest singular value sigma
# (the most W can stretch a vector), so that the layer stretches no input by more than a
# factor of 1. Computing sigma exactly (an SVD) at every step is expensive; SN estimates it with
# **power iteration**: starting from a unit vector u, repeat v = normalise(W^T u),
# u = normalise(W v); then sigma is about u^T W v. SN keeps u from one training step to the
# next, so one round per step is enough.

# %% tags=["solution"] hint="n_iters rounds of v = normalise(W^T u), u = normalise(W v); sigma = u^T W v"
import torch.nn.functional as F


def power_iteration(weight, u, n_iters):
    """Largest singular value of weight (m, n) from a unit vector u (m,) after n_iters
    rounds; returns (sigma, the new u)."""
    v = F.normalize(weight.T @ u, dim=0)  # so that n_iters = 0 returns u's own estimate
    for _ in range(n_iters):
        v = F.normalize(weight.T @ u, dim=0)
        u = F.normalize(weight @ v, dim=0)
    return u @ (weight @ v), u


# %%
teach.check_power_iteration(power_iteration)

# %% [markdown]
# ### Power iteration on the real discriminator
# The published SSD discriminator stores, for each of its three SN layers, the weight before
# division and SN's vector u as training left it.
#
# **Predict.** From that stored u, how far is one round of your power iteration from the
# exact largest singular value (SVD)? And what is the largest singular value of the weight
# the layer actually applies?

# %% [markdown] tags=["teacher"]
# **Expected.** One round already agrees with the SVD to four or five digits, because u has
# been refined by one round at each of the run's 2,980 steps. The stored weights' sigma has
# grown well above 1 during training (about 2.5, 4.3 and 7.0 for the three layers of the
# published run), while the applied weight, stored divided by SN's estimate, has a largest
# singular value of about 1. It is a little above 1 (by up to 0.002): SN's stored estimate
# was made before the last optimiser step moved the weight, so it lags slightly behind.

# %%
D = ssd.load_discriminator()
lesson.power_iteration_table(D, power_iteration)

# %% [markdown]
# ## Part 3. Train on from a snapshot, then remove SN (planned: 15 min on a 2-core laptop, about 4 min of it training)
#
# Training SSD from scratch to the paper's 20 epochs took 98 minutes on the 2-core machine
# that trained the published run. Instead we start from a **snapshot** of the same run after
# 3 epochs (step 447), published with both networks, and train on for two minutes: the same
# recipe (losses, learning rates, batch size), fresh optimiser state. The samples are drawn
# at the same codes before and after. Then we do it again with spectral normalisation
# switched off: the discriminator starts as the very same function, but nothing divides its
# weights any more.

# %%
snap = load_key("ssd-seed42-step447")
g_snap, value_range = snap.load_generator(), snap.config.real_range
print(snap.label())
print("the snapshot's samples:", generator_verdict(g_snap, value_range, reference, seed=SEED))
snapshot_samples = generate(g_snap, sample_z(16, g_snap.z_dim, SEED), value_range)
grid_figure(snapshot_samples, "SSD after 3 epochs (the snapshot)", snap.label(), nrow=8)

# %% [markdown]
# **Predict.** After about two minutes (on a 2-core laptop roughly one step per second, so
# a hundred steps or so, against the snapshot's 447): will you see a difference in the
# samples? Which one?

# %% [markdown] tags=["teacher"]
# **Expected.** Changes are visible within two minutes. On the development machine (2-core
# AMD EPYC, 112 steps in 119 s) the faces at the same codes became lighter and better
# defined (brown dogs with clearer eyes instead of the snapshot's greyish ones). Variety
# hardly changes: the snapshot's samples are one face in several colours (the verdict
# printed with them: "partially collapsed"), after the two minutes still about two thirds
# of them are near-duplicates, and the published run's after 20 epochs are still partially
# collapsed (a few faces, each drawn many times).
# The published run's own grids show what epochs 4 to 7 look like (notebook `01_training`,
# "fixed codes during training"). If the laptops are slow, fewer steps happen: the cell says
# how many.

# %%
from ssd_lib.teach.train_on import comparison_figure, continue_training

with_sn = continue_training(
    snap, steps=TRAIN_STEPS, seconds=TRAIN_SECONDS, keep_sn=True, seed=SEED, dataset=ds,
    device=DEVICE,
)
print(with_sn)
print("its samples:", generator_verdict(with_sn.generator, value_range, reference, seed=SEED))
with_sn.figure()

# %% [markdown]
# **Predict.** Now the same two minutes without spectral normalisation. What do you expect
# to change first: the samples, the losses, or the largest singular value of D's applied
# weights (the rightmost panel)?

# %% [markdown] tags=["teacher"]
# **Expected.** The singular values: with SN the applied weights stay at sigma of about 1 by
# construction (within 0.003); without SN nothing holds them, and they drift from 1 within
# the first steps. On the development machine, in 110 steps, they grew to about 1.1, 1.5 and
# 2.3 for the three layers, the deepest the most. The losses did not change character
# visibly in two minutes. The samples did: without SN they turned darker and greener with
# stronger grid artefacts, and more of them were near-duplicates (94 % against 66 % with
# SN). That is one seed and two minutes: a hint, not a result. Point to the published
# no-SN run (part 1) for the full 20 epochs. Note for the discussion: each middle convolution
# is followed by BatchNorm, so the weight's scale hardly changes D's output in training mode;
# what SN changes here is mostly how far each optimiser step moves the applied weight.

# %%
without_sn = continue_training(
    snap, steps=TRAIN_STEPS, seconds=TRAIN_SECONDS, keep_sn=False, seed=SEED, dataset=ds,
    device=DEVICE,
)
print(without_sn)
print("its samples:", generator_verdict(without_sn.generator, value_range, reference, seed=SEED))
comparison_figure([with_sn, without_sn])

# %% [markdown]
# ## Part 4. Read the latent space (planned: 15 min on a 2-core laptop)
#
# Two spaces feed SSD's generator: Z, where the random codes live, and W, what the mapping
# network makes of them (and what AdaIN reads). The published generator also keeps the
# average w seen during training, w_avg.
#
# **Truncation** pulls a style towards the average: w' = w_avg + psi (w - w_avg). psi = 1
# changes nothing; psi = 0 gives w_avg itself.
#
# **Predict.** In the grid below each row is one code and the columns go from psi = 0 to
# psi = 1.25. What will the first column look like? What do you trade when psi goes below 1?

# %% [markdown] tags=["teacher"]
# **Expected.** The first column is the same "average dog" in every row. Lower psi gives more
# typical, cleaner-looking faces and less variety; above 1 the faces get more unusual and
# artefacts grow. That is the variety-against-typicality trade that truncation makes in
# StyleGAN's and BigGAN's showcase images.

# %%
from ssd_lib.analysis.latent import interpolation_images, truncation_images

psis = [0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
images = truncation_images(G, ssd.config.real_range, sample_z(5, G.z_dim, SEED + 1), psis)
grid_figure(images, f"truncation: one code per row, psi = {psis}", ssd.label(), nrow=len(psis))

# %% [markdown]
# **Interpolation.** Walk from one code to another in 8 steps: in Z along the great circle
# (slerp: the mapping divides z by its length, so only directions matter), in W along a
# straight line (lerp) between the two mapped styles. StyleGAN's authors argue that W is
# "more linear": walking in W changes the image more evenly.
#
# **Predict.** Which walk looks smoother to you? The next cell then measures it: the
# perceptual path length (PPL) averages how much the image changes for a tiny step along such
# walks, here measured with the project's small toy feature network (so the numbers compare
# Z with W, not with the StyleGAN papers). Shorter is smoother.

# %% [markdown] tags=["teacher"]
# **Expected.** This is an open question for a small, briefly trained model, not a given:
# read the measurement. Notebook `03_disentanglement` measures more (linear probes of
# attributes from z and from w).

# %%
z_a, z_b = sample_z(3, G.z_dim, SEED + 2), sample_z(3, G.z_dim, SEED + 3)
in_z = interpolation_images(G, ssd.config.real_range, z_a, z_b, steps=8, space="z")
in_w = interpolation_images(G, ssd.config.real_range, z_a, z_b, steps=8, space="w")
rows = []
for i in range(3):
    rows += [(f"pair {i}: in Z (slerp)", in_z[8 * i : 8 * i + 8])]
    rows += [(f"pair {i}: in W (lerp)", in_w[8 * i : 8 * i + 8])]
strips_figure(rows, "The same endpoints, walked in Z and in W", ssd.label())

# %%
from ssd_lib.analysis.ppl import path_length, toy_feature_fn
from ssd_lib.metrics.toy import load_or_train_factor_net

toy_net = load_or_train_factor_net(ds)  # the project's toy feature network (published)
for space in ("z", "w"):
    ppl = path_length(G, ssd.config.real_range, toy_feature_fn(toy_net), n=PPL_PAIRS, space=space)
    print(f"PPL-toy in {space.upper()}: mean {ppl.mean:.4g}, median {ppl.median:.4g} ({ppl.n} pairs)")

# %% [markdown]
# ### The explorer
# Notebook `05_latent_explorer` has sliders that move one dog along directions in W (found
# from the data's labelled attributes), with truncation, style mixing and interpolation.
# The cell below opens the same explorer on the published SSD generator, with the principal
# directions of W as sliders.

# %%
from ssd_lib.generation.explorer import Explorer

explorer = Explorer.from_run(ssd)
explorer.widget()

# %% [markdown]
# ## Part 5. Measure (planned: 15 min on a 2-core laptop)
#
# How close are generated images to real ones, as a set? FID and KID compare **features**
# of many real and many generated images (for FID, the features of an Inception network).
#
# - **FD (Frechet distance)** fits a Gaussian to each set of features and measures the
#   distance between the two Gaussians:
#   |mu_r - mu_f|^2 + tr(S_r + S_f - 2 (S_r S_f)^(1/2)), where mu is a mean vector, S a
#   covariance matrix and (.)^(1/2) the matrix square root. FID is FD on Inception features.
# - **KID** compares the two sets through a kernel, k(x, y) = (x.y / D + 1)^3 with D the
#   feature dimension, as an unbiased estimate of the squared MMD: the average k within the
#   real set plus the average within the fake set (leaving out each sample with itself)
#   minus twice the average between the sets.
#
# ### Exercise: the Frechet distance

# %% tags=["solution"] hint="means, np.cov(rowvar=False), scipy.linalg.sqrtm of the product (real part)"
import numpy as np
import scipy.linalg


def frechet_distance(real, fake):
    """Frechet distance between Gaussians fitted to features real (N, D) and fake (M, D)."""
    mu_r, mu_f = real.mean(axis=0), fake.mean(axis=0)
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = np.real(scipy.linalg.sqrtm(s_r @ s_f))
    diff = mu_r - mu_f
    return float(diff @ diff + np.trace(s_r) + np.trace(s_f) - 2 * np.trace(covmean))


# %%
teach.check_frechet_distance(frechet_distance)

# %% [markdown]
# ### Exercise: KID

# %% tags=["solution"] hint="mean k over pairs i != j within each set, minus 2 x mean k across"
import numpy as np


def kid(real, fake):
    """Unbiased squared MMD between features real (N, D) and fake (M, D), with the kernel
    k(x, y) = (x.y / D + 1)^3."""
    d = real.shape[1]
    k_rr = (real @ real.T / d + 1) ** 3
    k_ff = (fake @ fake.T / d + 1) ** 3
    k_rf = (real @ fake.T / d + 1) ** 3
    n, m = len(real), len(fake)
    within_r = (k_rr.sum() - np.trace(k_rr)) / (n * (n - 1))
    within_f = (k_ff.sum() - np.trace(k_ff)) / (m * (m - 1))
    return float(within_r + within_f - 2 * k_rf.mean())


# %%
teach.check_kid(kid)

# %% [markdown]
# ### Your FD and KID on real features
# Features of the toy network (128 numbers per image) for held-out real dogs, for other real
# dogs (from the training set), for samples of the published SSD and, if they are
# published, of the other models.
#
# **Predict.** FD and KID between two sets of *real* dogs: exactly 0? Can KID be negative?

# %% [markdown] tags=["teacher"]
# **Expected.** FD is not 0: two finite samples differ by chance, and FD is biased upwards
# for finite samples, the more so the smaller the sets (on this project's toy features, 500
# held-out against 500 training dogs give 2.83, docs/metrics.md; expect more with the
# lesson's smaller sets). KID is unbiased, so for two samples of the same distribution it
# scatters around 0 and can come out slightly negative. The models' numbers should be clearly
# larger than the real-against-real ones; how much larger is the measurement.

# %%
from ssd_lib.metrics.toy import embed

real = embed(toy_net.net, ds.val.images[:N_FEATURES])[0]
others = {"real (training set)": embed(toy_net.net, ds.train.images[:N_FEATURES])[0]}
for name, run in runs.items():
    g = run.load_generator()
    fake = generate(g, sample_z(N_FEATURES, g.z_dim, SEED + 4), run.config.real_range)
    others[f"{name} samples"] = embed(toy_net.net, fake)[0]
lesson.by_hand_vs_library(frechet_distance, kid, real, others)

# %% [markdown]
# ### The class's quiz
# Once everyone's `quiz_<id>.csv` is in one folder (`CLASS_FOLDER`), the fraction of images
# judged real per source and exposure, with 95 % intervals, beside LAPGAN's volunteers.
#
# **Predict.** At 2000 ms LAPGAN's volunteers judged about 90 % of real images real, about
# half of LAPGAN's samples, and under 10 % of a plain GAN's. What fraction of SSD's samples
# did this class judge real? More or less at 250 ms than at 2000 ms?

# %% [markdown] tags=["teacher"]
# **Expected.** No number is known in advance: this is the class's own measurement. Whether
# the short exposure makes fakes harder to spot is part of it: compare the two exposures'
# intervals before calling a difference. With 12 images per source and student the
# intervals are wide, and wider in truth than drawn (answers of one student are not
# independent).

# %%
from ssd_lib.teach.quiz import QuizDataError, plot_summary, summarize

try:
    table = summarize(CLASS_FOLDER)
    display(table)
    display(plot_summary(table))
except QuizDataError as err:
    print(f"no quiz results to show yet: {err}")

# %% [markdown] tags=["teacher"]
# **Teacher.** The intervals treat every answer as independent; answers of one student are
# not, so with a class of 30 the true uncertainty is wider than drawn. LAPGAN's numbers are
# for other images (CIFAR-10 and LSUN), other screens and untrained volunteers.

# %% [markdown]
# ## Wrap-up (planned: 5 min)
#
# - The paper claims that SSD reaches good samples with few parameters and little data, and
#   that spectral normalisation in the discriminator is what keeps its training stable. In
#   part 3 you saw what SN does to D's weights in two minutes; the published runs show 20
#   epochs with and without it.
# - GAN losses describe a game, not quality: loss_g near 7 meant D rejected nearly every
#   fake, while the samples kept improving.
# - Measuring needs care: FD is biased for small sets, KID is unbiased but noisy, and both
#   depend on the feature network. Your own eyes (the quiz) are another measurement, with
#   its own biases.

# %% [markdown] tags=["teacher"]
# **Teacher.** Collect questions for next time; docs/teaching.md lists the ones students
# usually ask, with short answers.
