"""`python -m benchmarks ...` is `jaxrec bench ...` with this repository's configs/."""

import sys
from pathlib import Path

from jaxrec.bench import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if "--configs" not in args:
        args += ["--configs", str(Path(__file__).resolve().parent.parent / "configs")]
    sys.exit(main(args))
