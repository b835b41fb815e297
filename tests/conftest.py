"""Suite-wide settings: one intra-op thread (on a loaded 2-core machine, spinning OpenMP threads made tests
up to 100x slower in CPU time; results are the same), and a headless matplotlib."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")

import torch  # noqa: E402

torch.set_num_threads(1)
