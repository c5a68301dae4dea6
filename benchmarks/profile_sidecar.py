"""Run pydaprd under cProfile with a CPU-time clock; the profile is written when it exits.

    python benchmarks/profile_sidecar.py OUT.prof -- <pydaprd arguments>

``bench_invoke.py --profile DIR`` starts its sidecars this way; read the result with
``python -m pstats OUT.prof`` (``sort tottime``, ``stats 30``).
"""
from __future__ import annotations

import cProfile
import runpy
import sys
import time


def main() -> None:
    out, sep, *args = sys.argv[1:]
    if sep != "--":
        raise SystemExit(__doc__)
    sys.argv = ["pydaprd", *args]
    prof = cProfile.Profile(time.process_time)
    prof.enable()
    try:
        runpy.run_module("pydapr.daprd.app", run_name="__main__")
    except SystemExit:
        pass
    finally:
        prof.disable()
        prof.dump_stats(out)


if __name__ == "__main__":
    main()
