"""``make bench``: training and sampling speed of the paper's networks on this machine, and
the release's own pipeline side by side with the project's.

- ``measure``: rates of single pieces (train step, sampling, feature networks, matrix
  multiply), floating-point work and a profile of one iteration;
- ``reference``: the release's pipeline, transcribed;
- ``compare``: the release's pipeline against ours, each in a fresh process, and the targets;
- ``precision``: bf16 against fp32 across seeds (FD-toy after the same short run);
- ``cli``: ``python -m ssd_lib.bench``, which prints the tables and rewrites its section of
  ``docs/benchmarks.md``.

These are measurements, not tests: nothing here passes or fails.
"""
