"""Every test runs on 8 fake CPU devices (DESIGN.md §4.7), set before any JAX op."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", 8)
