#!/usr/bin/env python3
"""Old against new, each measured against the ceiling in the same run: did a change make odin-ws
slower? The machine is shared and noisy, so absolute figures from different moments do not
compare. Each round runs the scenario with targets odin and blaster (the writev ceiling) once for
the old build and once for the new one, alternating which goes first; every run gives, per
configuration, the ratio odin p99 / ceiling p99 (and delivery). The medians of those ratios are
compared. Runs go to a scratch file, never to docs/bench/results.json.

Usage: tools/bench/compare.py OLD_BUILD NEW_BUILD fanout|sustained [--rounds 3] [--seconds 30]
Each build directory needs odin-ws, loadclient, publisher and blaster (see run.sh).
e.g. tools/bench/compare.py /work/old/build/release build/release fanout --rounds 3
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def config_of(setup):
    return (setup["connections"], setup.get("per_conn", 1), setup.get("rate", 0))


def ratios(results_file, scenario):
    """{config: (odin p99 / ceiling p99, odin delivered %, odin p99, ceiling p99)} of one run."""
    with open(results_file) as f:
        runs = json.load(f)["scenarios"][scenario]["runs"]
    by = {}
    for r in runs:
        by.setdefault(config_of(r["setup"]), {})[r["setup"]["target"]] = r
    out = {}
    for config, t in by.items():
        if "odin" in t and "blaster" in t:
            odin, ceil = t["odin"]["latency_ms"]["p99"], t["blaster"]["latency_ms"]["p99"]
            out[config] = (odin / ceil if ceil else float("inf"), t["odin"]["delivery_percent"],
                           odin, ceil)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("old_build")
    ap.add_argument("new_build")
    ap.add_argument("scenario", choices=["fanout", "sustained"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=30, help="sustained: length of each run")
    ap.add_argument("--out", default=None, help="a JSON file for the per-run ratios")
    a = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="odin-compare-")
    per_run = {"old": [], "new": []}
    for rnd in range(a.rounds):
        order = ["old", "new"] if rnd % 2 == 0 else ["new", "old"]
        for label in order:
            build = a.old_build if label == "old" else a.new_build
            results = os.path.join(scratch, f"{label}-{rnd}.json")
            cmd = [sys.executable, os.path.join(HERE, "bench.py"), a.scenario, "--targets",
                   "odin,blaster", "--repeat", "1", "--build", build, "--results", results]
            if a.scenario == "sustained":
                cmd += ["--seconds", str(a.seconds)]
            print(f"== round {rnd + 1}/{a.rounds}: {label} ({build})", flush=True)
            subprocess.run(cmd, check=True)
            per_run[label].append(ratios(results, a.scenario))
    configs = sorted({c for runs in per_run.values() for r in runs for c in r})
    print(f"\n{a.scenario}: p99 of odin-ws / p99 of the ceiling in the same run, median of "
          f"{a.rounds} rounds (lower is better; each row: old, new)")
    print("| clients | per client | rate | old: ratio (runs) | new: ratio (runs) | new / old | "
          "delivered old / new |")
    print("|---|---|---|---|---|---|---|")
    summary = []
    for c in configs:
        med = {}
        cells = {}
        for label in ("old", "new"):
            rs = [r[c] for r in per_run[label] if c in r]
            med[label] = statistics.median(x[0] for x in rs)
            cells[label] = (f"**{med[label]:.2f}** ("
                            + ", ".join(f"{x[0]:.2f}" for x in rs) + ")")
            cells[label + "_del"] = min(x[1] for x in rs)
        change = med["new"] / med["old"] if med["old"] else float("inf")
        summary.append({"config": c, "old": med["old"], "new": med["new"], "new_over_old": change})
        print(f"| {c[0]:,} | {c[1]} | {c[2]}/s | {cells['old']} | {cells['new']} | {change:.2f} | "
              f"{cells['old_del']:.2f}% / {cells['new_del']:.2f}% |")
    if a.out:
        with open(a.out, "w") as f:
            json.dump({"scenario": a.scenario, "rounds": a.rounds, "per_run": {
                k: [{str(c): v for c, v in r.items()} for r in runs] for k, runs in per_run.items()},
                "summary": [dict(s, config=list(s["config"])) for s in summary]}, f, indent=1)


if __name__ == "__main__":
    main()
