#!/usr/bin/env python3
"""The cost table of the method axis (scripts/compare.sh --methods): per method, the teacher
lists it pulls (length, cache file size, pull seconds), seconds per training epoch, and the
online ScoreItems traffic, read from the runs' manifests. Prints Markdown.

usage: method_costs.py OUT STUDENT_DIM METHOD..."""
import glob
import json
import os
import statistics
import sys

out, dim, methods = sys.argv[1], sys.argv[2], sys.argv[3:]


def manifests(prefix):
    for path in sorted(glob.glob(os.path.join(out, prefix + "-s*", "manifest.json"))):
        with open(path) as f:
            yield json.load(f)


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.mean(values) if values else None


def fmt(value, digits=1):
    return "-" if value is None else f"{value:.{digits}f}"


rows = []
alone = list(manifests(f"alone-d{dim}"))
rows.append(("alone", "-", "-", "-", fmt(mean(m["training"].get("seconds_per_epoch") for m in alone)), "-"))
for method in methods:
    runs = list(manifests(f"m-{method}-d{dim}"))
    if not runs:
        continue
    training = [m["training"] for m in runs]
    config = training[0].get("method_config") or {}
    length = config.get("top_n") or config.get("k") or training[0].get("rd", {}).get("k")
    if method == "rcekd":
        length = config.get("k")
    sizes = []
    for t in training:
        for f in t.get("pull", {}).get("cache_files", []):
            if os.path.exists(f):
                sizes.append(os.path.getsize(f) / 1e6)
    # The first run pulls; the others read the cache.
    pulls = [t["pull"]["seconds"] for t in training if t.get("pull", {}).get("source") == "teacher"]
    score = [t.get("score_items") for t in training if t.get("score_items")]
    online = "-"
    if score:
        online = (
            f"{mean(s['calls'] for s in score):.0f} calls, "
            f"{mean(s['scored_pairs'] for s in score) / 1e6:.1f} M pairs, "
            f"{mean(s['seconds'] for s in score):.0f} s"
        )
    rows.append(
        (
            method,
            str(length),
            fmt(mean(sizes)),
            fmt(mean(pulls) if pulls else None),
            fmt(mean(t.get("seconds_per_epoch") for t in training)),
            online,
        )
    )
print()
print("## Cost per method")
print()
print("Teacher list length, its cache file (items u32 + scores f16), the pull's seconds (first run; the")
print("other seeds read the cache), mean training seconds per epoch (two runs at a time, one LibTorch")
print("thread each, so under contention), and the online ScoreItems traffic per run.")
print()
print("| method | list length | cache MB | pull s | s / epoch | ScoreItems per run |")
print("|---|---|---|---|---|---|")
for row in rows:
    print("| " + " | ".join(row) + " |")
