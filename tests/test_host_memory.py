"""keep_freed_memory: a jitted call's temporaries stop page-faulting on every call."""

import ctypes.util
import json
import os
import subprocess
import sys

import pytest

# One process per setting: malloc options must be set before XLA starts its threads.
_SCRIPT = """
import json, sys
from jaxrec.host_memory import keep_freed_memory
applied = keep_freed_memory()
import jax, jax.numpy as jnp

@jax.jit
def step(x):  # two 32 MiB temporaries per call
    y = jnp.sin(x) * 2.0
    return jnp.sum(jnp.cos(y) + y)

x = jnp.ones((8_000_000,))
for _ in range(5):  # the heap grows to its working size over the first calls
    step(x).block_until_ready()

def faults():
    return int(open("/proc/self/stat").read().split(")")[1].split()[7])

per_call = []
for _ in range(11):
    before = faults()
    step(x).block_until_ready()
    per_call.append(faults() - before)
print(json.dumps({"applied": applied, "median_faults": sorted(per_call)[5]}))
"""


def _run(env_extra: dict) -> dict:
    env = {**os.environ, **env_extra}
    out = subprocess.run(
        [sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    sys.platform != "linux" or ctypes.util.find_library("c") != "libc.so.6",
    reason="mallopt settings are glibc (Linux) only",
)
def test_freed_temporaries_are_reused_instead_of_page_faulting():
    default = _run({"JAXREC_HOST_MALLOC": "default"})
    tuned = _run({})
    assert not default["applied"] and tuned["applied"]
    # 64 MiB of fresh pages per call is ~16,000 faults (measured on the project's VM);
    # reused memory faults almost never (the median call: now and then a call still faults
    # its pages in; cause not found).
    if default["median_faults"] < 1000:
        pytest.skip(f"this glibc already reuses the temporaries ({default} faults per call)")
    assert tuned["median_faults"] < default["median_faults"] / 10


def test_config_setting_is_checked():
    from jaxrec.errors import ConfigError
    from jaxrec.host_memory import apply_setting

    with pytest.raises(ConfigError, match="train.host_malloc='keep'"):
        apply_setting("keep")
