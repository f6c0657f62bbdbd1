"""`python -m jaxrec.bench`: the same as `jaxrec bench` (and how a case runs in a fresh
process: `--case`)."""

import sys

from jaxrec.bench.suites import main

sys.exit(main())
