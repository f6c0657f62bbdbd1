"""What XLA says a compiled call costs: FLOPs and bytes accessed, and the loops whose
bodies its cost analysis counts once.

The train cases divide these by the measured call time (`achieved_flops`,
`achieved_bandwidth`); the report shows them as fractions of the machine's peak.
"""

from __future__ import annotations

import re

_NAME = re.compile(r"%([\w.\-]+)")
_WHILE_BODY = re.compile(r"body=%([\w.\-]+)")


def step_cost(compiled, calls_per_loop: int) -> tuple[float | None, float | None]:
    """(FLOPs, bytes accessed) of one compiled call from XLA's cost analysis, or None.

    XLA counts a loop body once, so a step that scans `calls_per_loop` mini-batches is
    multiplied back here."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    if not cost:
        return None, None
    flops, nbytes = cost.get("flops"), cost.get("bytes accessed")
    return (
        None if flops is None else flops * calls_per_loop,
        None if nbytes is None else nbytes * calls_per_loop,
    )


def _has_product(line: str) -> bool:
    return (
        " dot(" in line or " convolution(" in line or (" custom-call(" in line and "matmul" in line)
    )


def inner_loops(compiled, calls_per_loop: int) -> int:
    """Loops with matrix products inside the compiled call, besides the scan over
    `calls_per_loop` steps.

    XLA's cost analysis counts a loop body once whatever its trip count (a scan of ten
    256×256 products costs as much as one), so a step that scans sub-batch updates (CFGAN,
    IRGAN's D and G passes) is undercounted: its figures are lower bounds. Loops without a
    product (the random-bit generator's rounds, sorted searches) barely count and are left
    out.
    """
    bodies, calls, has_dot = [], {}, {}
    name = None
    for line in compiled.as_text().splitlines():
        if line and not line[0].isspace() and line.rstrip().endswith("{"):
            name = line.split()[1 if line.startswith("ENTRY") else 0].lstrip("%")
            calls[name], has_dot[name] = set(), False
        elif name is not None and line.strip():
            has_dot[name] |= _has_product(line)
            calls[name].update(_NAME.findall(line))  # operands too; only computations count
            if " while(" in line:
                bodies += _WHILE_BODY.findall(line)

    def with_dot(comp, seen=()):
        if has_dot.get(comp):
            return True
        inner = calls.get(comp, set()) & calls.keys()
        return any(with_dot(c, (*seen, comp)) for c in inner if c not in seen)

    loops = sum(with_dot(b) for b in bodies)
    return max(0, loops - (1 if calls_per_loop > 1 else 0))
