#!/usr/bin/env python3
"""Generates `kgroup assign` inputs for the issue-5 benchmark scenarios.

usage: gen_assign_inputs.py OUTDIR KGROUP_BIN [scenario ...]

For each scenario (uniform, nonequal, quarter, small; uniform10k/uniform100k
for growth) writes OUTDIR/<scenario>-fresh.json, runs KGROUP_BIN assign on it
to get the fresh result, then writes <scenario>-join.json (everyone owns the
fresh result at generation 1, one new member joins with nothing) and
<scenario>-leave.json (consumer0000 is gone). All use cooperative-sticky.
"""
import json
import os
import subprocess
import sys


def scenario(name):
    """(topics: {name: partitions}, members: [(member_id, [topics])])"""
    if name.startswith("uniform"):
        ntopics, nparts, nmembers = {
            "uniform": (500, 2000, 2000),
            "uniform100k": (50, 2000, 200),
            "uniform10k": (5, 2000, 20),
        }[name]
        topics = {f"topic{t:03d}": nparts for t in range(ntopics)}
        names = list(topics)
        return topics, [(f"consumer{i:04d}", names) for i in range(nmembers)]
    if name == "nonequal":
        topics = {f"topic{t:03d}": 2000 for t in range(500)}
        names = list(topics)
        return topics, [(f"consumer{i:04d}", names[: (i % 500) + 1]) for i in range(2000)]
    if name == "quarter":
        topics = {f"topic{t:03d}": 200 for t in range(100)}
        members = []
        for i in range(500):
            g = i % 4
            ts = [f"topic{t:03d}" for t in range(100) if t % 4 == g or t % 4 == (g + 1) % 4]
            members.append((f"consumer{i:04d}", ts))
        return topics, members
    if name == "small":
        topics = {f"topic{t:02d}": 10 for t in range(10)}
        names = list(topics)
        return topics, [(f"consumer{i:04d}", names) for i in range(10)]
    raise SystemExit(f"unknown scenario {name}")


def write(path, topics, members, owned=None):
    doc = {
        "assignor": "cooperative-sticky",
        "topics": topics,
        "members": [
            {"member_id": m, "topics": ts, **({"owned": owned.get(m, []), "generation": 1} if owned is not None else {})}
            for m, ts in members
        ],
    }
    with open(path, "w") as f:
        json.dump(doc, f, separators=(",", ":"))


def main():
    outdir, kgroup = sys.argv[1], sys.argv[2]
    names = sys.argv[3:] or ["small", "quarter", "uniform10k", "uniform100k", "uniform", "nonequal"]
    os.makedirs(outdir, exist_ok=True)
    for name in names:
        topics, members = scenario(name)
        fresh = os.path.join(outdir, f"{name}-fresh.json")
        write(fresh, topics, members)
        result = os.path.join(outdir, f"{name}-fresh.out.json")
        subprocess.run([kgroup, "assign", "--input", fresh, "--output", result], check=True)
        with open(result) as f:
            owned = json.load(f)
        new = (f"consumer{len(members):04d}", members[-1][1] if name != "nonequal" else members[len(members) % 500][1])
        write(os.path.join(outdir, f"{name}-join.json"), topics, members + [new], owned)
        write(os.path.join(outdir, f"{name}-leave.json"), topics, members[1:], owned)
        print(f"{name}: written", file=sys.stderr)


if __name__ == "__main__":
    main()
