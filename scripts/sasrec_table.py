#!/usr/bin/env python3
"""The table of the SASRec axis (scripts/compare.sh --sasrec): per group of runs (one folder
per seed, `GROUP-sN`), the model, its parameters, the sampled metrics of the SASRec paper (HR@10
and NDCG@10 of the test item among 100 sampled negatives) and the full-ranking ones (HR@10,
NDCG@10 and MAP over the whole catalogue), mean +- standard deviation over the seeds, read from
each run's manifest.json and OUT/eval/RUN.json (`trainer evaluate --sampled-negatives 100 --json`).
Then whether each student + RD beats its student alone by more than the seeds' spread.
Prints Markdown.

usage: sasrec_table.py OUT"""
import glob
import json
import os
import statistics
import sys

out = sys.argv[1]
GROUPS = [
    ("teacher", "SASRec teacher"),
    ("sasrec-alone", "SASRec student alone"),
    ("sasrec-rd", "SASRec student + RD"),
    ("sasrec-rd-unseen", "SASRec student + RD, --exclude-seen true"),
    ("sasrec-alone-tuned", "SASRec student alone, epochs chosen on validation"),
    ("sasrec-rd-tuned", "SASRec student + RD, settings chosen on validation"),
    ("caser-alone", "Caser student alone"),
    ("caser-rd", "Caser student + RD"),
    ("caser-rd-unseen", "Caser student + RD, --exclude-seen true"),
]


def load(path):
    with open(path) as f:
        return json.load(f)


def at10(metrics):
    return next(a for a in metrics["at"] if a["k"] == 10)


def runs(prefix):
    found = []
    for folder in sorted(glob.glob(os.path.join(out, prefix + "-s*"))):
        evaluation = os.path.join(out, "eval", os.path.basename(folder) + ".json")
        if os.path.exists(evaluation):
            found.append((load(os.path.join(folder, "manifest.json")), load(evaluation)))
    return found


def figures(evaluation):
    full, sampled = at10(evaluation["metrics"]), at10(evaluation["sampled"])
    return {
        "hr_s": sampled["hr"],
        "ndcg_s": sampled["ndcg"],
        "hr_f": full["recall"],
        "ndcg_f": full["ndcg"],
        "map": evaluation["metrics"]["map"],
    }


def spread(values):
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return mean, std


rows, summary = [], {}
print("| model | kind, d, blocks | parameters | seeds | HR@10 (100 neg.) | NDCG@10 (100 neg.) | HR@10 (full) | NDCG@10 (full) | MAP (full) |")
print("|---|---|---|---|---|---|---|---|---|")
for prefix, name in GROUPS:
    found = runs(prefix)
    if not found:
        continue
    model = found[0][0]["model"]
    shape = f"{model['kind']}, {model['dim']}" + (f", {model['num_blocks']}" if model["kind"] == "sasrec" else "")
    per_seed = [figures(e) for _, e in found]
    cells = {}
    for key in ("hr_s", "ndcg_s", "hr_f", "ndcg_f", "map"):
        cells[key] = spread([f[key] for f in per_seed])
    summary[prefix] = cells
    fmt = lambda key: f"{cells[key][0]:.4f} ± {cells[key][1]:.4f}"
    print(
        f"| {name} | {shape} | {found[0][0]['num_parameters']:,} | {len(found)} | {fmt('hr_s')} | "
        f"{fmt('ndcg_s')} | {fmt('hr_f')} | {fmt('ndcg_f')} | {fmt('map')} |"
    )

print()
for student, alone_key, variants in (
    ("sasrec", "sasrec-alone", (("rd", "+ RD"), ("rd-unseen", "+ RD --exclude-seen true"))),
    ("sasrec", "sasrec-alone-tuned", (("rd-tuned", "+ RD (chosen on validation)"),)),
    ("caser", "caser-alone", (("rd", "+ RD"), ("rd-unseen", "+ RD --exclude-seen true"))),
):
    alone = summary.get(alone_key)
    for variant, name in variants:
        rd = summary.get(f"{student}-{variant}")
        if not alone or not rd:
            continue
        for key, label in (("ndcg_s", "sampled NDCG@10"), ("hr_s", "sampled HR@10"), ("map", "MAP")):
            gain = rd[key][0] - alone[key][0]
            bar = max(rd[key][1], alone[key][1])
            if gain > bar:
                verdict = "better, beyond the seed std"
            elif gain < -bar:
                verdict = "worse, beyond the seed std"
            else:
                verdict = "within the seed std"
            print(f"- {student} student {name} vs {alone_key}, {label}: {gain:+.4f} ({verdict}: std {bar:.4f})")
