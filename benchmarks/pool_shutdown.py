"""How Ray's multiprocessing pool exits: joblib's `close(); terminate()` vs `close(); join(); terminate()`.

Each round starts a pool of 2 actors, maps a trivial function, and shuts it down the chosen way; the
worker exit types then come from the raylet's log of this Ray session (3 = the actor exited on its
own, 1 = killed by `ray.kill`, 0 = a system error: the "(raylet) A worker died ..." lines).

    .venv/bin/python benchmarks/pool_shutdown.py --rounds 60 --mode joblib
    .venv/bin/python benchmarks/pool_shutdown.py --rounds 60 --mode join
"""

from __future__ import annotations

import argparse
import collections
import logging
import re
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--mode", choices=("joblib", "join"), default="joblib")
    args = parser.parse_args()

    import ray
    from ray.util.multiprocessing import Pool

    context = ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    for _ in range(args.rounds):
        pool = Pool(2)
        pool.map(abs, range(10))
        pool.close()
        if args.mode == "join":
            pool.join()
        pool.terminate()
    time.sleep(3)  # let the raylet log the last exits
    raylet = Path(context.address_info["session_dir"]) / "logs" / "raylet.out"
    exits = collections.Counter(re.findall(r"Disconnecting worker, .*disconnect_type=(\d)", raylet.read_text()))
    print(f"{args.rounds} pools, mode {args.mode}: worker exits by type {dict(sorted(exits.items()))} "
          "(3 own exit, 1 ray.kill, 0 system error)")


if __name__ == "__main__":
    main()
