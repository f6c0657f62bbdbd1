"""Each benchmark case in a process of its own.

Forked from the suite's process where it has imported JAX and jaxrec but started no backend
(each child still initialises, compiles and counts its peak memory on its own; a forked
child counts the library pages it touches, not those it inherited untouched, so its peak RSS
is below a fresh process's), else a fresh `python -m jaxrec.bench --case`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile


def case_main(spec: str) -> None:
    from jaxrec.bench.cases import report_case

    print("REPORT " + report_case(json.loads(spec)))


def can_fork() -> bool:
    """Whether cases can fork from this process: POSIX, and no JAX backend started here
    (a child would inherit its threads; a test process has one)."""
    try:
        from jax._src import xla_bridge

        return hasattr(os, "fork") and not xla_bridge.backends_are_initialized()
    except (ImportError, AttributeError):  # a JAX without that function: start a process
        return False


def run_isolated(case: dict, env: dict) -> tuple[list, dict, str]:
    """One case in its own process → (records, phases, error: '' or the output's last lines).

    Forked from this process where `can_fork`: it has imported JAX and jaxrec once but
    started no backend, so each child still initialises, compiles and counts its peak
    memory on its own. Elsewhere a fresh `python -m jaxrec.bench --case`. `env`: variables
    the case sets before JAX starts.
    """
    return _run_forked(case, env) if can_fork() else _run_fresh(case, env)


def _run_fresh(case: dict, env: dict) -> tuple[list, dict, str]:
    cmd = [sys.executable, "-m", "jaxrec.bench", "--case", json.dumps(case)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    out = [x.removeprefix("REPORT ") for x in proc.stdout.splitlines() if x.startswith("REPORT ")]
    if proc.returncode or not out:
        return [], {}, " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    got = json.loads(out[-1])
    return got["records"], got["phases"], ""


def _run_forked(case: dict, env: dict) -> tuple[list, dict, str]:
    import jaxrec.bench.cases
    import jaxrec.bench.serving
    import jaxrec.serving.export
    import jaxrec.serving.scorer
    import jaxrec.trainer  # noqa: F401  (what every case imports, loaded once before the fork)

    read, write = os.pipe()
    with tempfile.TemporaryFile() as log:
        sys.stdout.flush(), sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: reports through the pipe, never returns
            os.close(read)
            _child(case, env, write, log)
        os.close(write)
        with os.fdopen(read) as pipe:
            payload = pipe.read()  # to EOF before waiting: a large payload cannot block
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if code or not payload:
            log.seek(0)
            lines = log.read().decode(errors="replace").strip().splitlines()[-3:]
            return [], {}, " | ".join(lines) or f"exit code {code}"
    got = json.loads(payload)
    return got["records"], got["phases"], ""


def _child(case: dict, env: dict, write: int, log) -> None:
    """A forked case: runs it with `env`, writes its report to the pipe `write` and its
    output to `log`, and exits (never returns)."""
    import jax

    from jaxrec.bench.cases import report_case

    code = 1
    try:
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        os.environ.update(env)
        if "JAX_PLATFORMS" in env:  # read at import: set again, before any backend
            jax.config.update("jax_platforms", env["JAX_PLATFORMS"])
        if "JAX_NUM_CPU_DEVICES" in env:
            jax.config.update("jax_num_cpu_devices", int(env["JAX_NUM_CPU_DEVICES"]))
        payload = report_case(case)
        with os.fdopen(write, "w") as pipe:
            pipe.write(payload)
        code = 0
    except BaseException:  # reported to the parent through the log
        import traceback

        traceback.print_exc()
    finally:
        sys.stdout.flush(), sys.stderr.flush()
        os._exit(code)
