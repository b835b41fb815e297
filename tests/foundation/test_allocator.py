"""fastadapt.core.allocator: glibc mmap threshold raised so big tensors are reused, not re-faulted."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from fastadapt.core import allocator
from fastadapt.core.errors import ConfigError

# Allocate, touch and free a 64 MiB tensor 20 times after 15 warm-up cycles; report this process's minor page
# faults over those 20. (Tuned, the heap first grows by a few blocks: torch's aligned allocations do not fit
# exactly into the block just freed; after that the blocks are reused.)
_PROBE = """
import json, resource, sys
from fastadapt.core.allocator import allocator_state, tune_allocator
if sys.argv[1] == "tuned":
    tune_allocator()
import torch
def cycle():
    t = torch.empty(16 * 1024 * 1024)  # 64 MiB of float32
    t.fill_(1.0)
    del t
for _ in range(15):
    cycle()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    cycle()
after = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
print(json.dumps({"faults": after - before, "state": allocator_state()}))
"""


def _probe(mode: str, env_value: str | None = None) -> dict:
    env = None
    if env_value is not None:
        env = {**os.environ, allocator.ENV_VAR: env_value}
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, check=True, env=env
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc (Linux) only")
def test_tuned_allocator_reuses_big_blocks_instead_of_faulting_them_in_again() -> None:
    default = _probe("default")
    tuned = _probe("tuned")
    if tuned["state"] != "tuned":
        pytest.skip("this C library has no working mallopt (not glibc)")
    assert default["state"] == "untouched"
    # 20 fresh 64 MiB mappings = 20 x 16384 pages faulted in by default; tuned reuses one heap block.
    assert default["faults"] > 100_000, default
    assert tuned["faults"] < default["faults"] / 10, (tuned, default)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc (Linux) only")
def test_env_var_default_keeps_the_c_library_defaults() -> None:
    kept = _probe("tuned", env_value="default")
    assert kept["state"] == "default"
    assert kept["faults"] > 100_000, kept


def test_bad_env_value_and_thresholds_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(allocator.ENV_VAR, "jemalloc")
    with pytest.raises(ConfigError, match="FASTADAPT_ALLOCATOR='jemalloc'"):
        allocator.tune_allocator()
    with pytest.raises(ValueError, match="mmap_threshold=0"):
        allocator.tune_allocator(mmap_threshold=0, respect_env=False)
    with pytest.raises(ValueError, match="trim_threshold"):
        allocator.tune_allocator(trim_threshold=1 << 40, respect_env=False)


def test_cli_reports_a_bad_allocator_setting_in_one_line() -> None:
    env = {**os.environ, allocator.ENV_VAR: "bogus"}
    res = subprocess.run(
        [sys.executable, "-m", "fastadapt.cli", "--help"], capture_output=True, text=True, env=env
    )
    assert res.returncode == 2
    assert res.stderr.strip() == (
        "fastadapt: error: environment variable FASTADAPT_ALLOCATOR='bogus': expected 'tuned' or 'default'"
    )
