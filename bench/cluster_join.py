"""Time from a node joining a running search to the first trial on it, and trials lost when a
node leaves: the two cluster tests that measure it, run with their figures printed.

They start a `ray.cluster_utils.Cluster` (several Ray nodes on this machine, fake GPU counts):
one adds a node and then kills the first node mid-trial, the other runs the real `swarm join`
command and stops it with SIGTERM. Both assert that only the trials in flight on the node
that left are lost, so a passing run is the "lost" figure.

    .venv/bin/python bench/cluster_join.py [--repeat 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TESTS = ("tests/test_cluster.py::test_a_node_that_joins_gets_workers_and_one_that_leaves_loses_only_its_trials",
         "tests/test_cluster.py::test_swarm_join_lends_a_node_whose_leaving_loses_only_its_trials_in_flight")
FIGURE = re.compile(r"^((?:swarm join|node added).*?): ([0-9.]+) s$", re.M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    print("| run | measurement | seconds | only in-flight trials lost |")
    print("|---|---|---|---|")
    for run in range(1, args.repeat + 1):
        done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", *TESTS],
                              cwd=ROOT, capture_output=True, text=True)
        held = "yes" if done.returncode == 0 else "NO (a test failed: see pytest's output)"
        for what, seconds in FIGURE.findall(done.stdout):
            print(f"| {run} | {what} | {float(seconds):.1f} | {held} |")
        if done.returncode != 0:
            print(done.stdout[-3000:], file=sys.stderr)


if __name__ == "__main__":
    main()
