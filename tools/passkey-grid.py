#!/usr/bin/env python3
"""One passkey table from several `kvpack eval passkey` JSON reports.

A long grid is split over runs (each policy with the keys its cost allows, the f16 baseline once,
kept with --baseline-json). This joins them: one row per policy, per length its correct/trials,
and the answers paired trial by trial (same length, depth and key) with the baseline's, from
whichever report holds the baseline's answer to that trial. A policy in several reports gets the
union of its cells; a trial present twice must have the same answer, or the script stops.

    tools/passkey-grid.py docs/data/probe16-passkey-16k-f16.json run1.json run2.json \
        [--baseline k=f16,v=f16] [--depths] > grid.md

Markdown goes to stdout; `--depths` adds a table per length with each depth's cells.
"""
import argparse
import json
import re
import sys


def digits(answer):
    m = re.search(r"[0-9]+", answer)
    return m.group(0) if m else ""


def length_label(n):
    return f"{n // 1024}k" if n % 1024 == 0 else str(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("reports", nargs="+")
    ap.add_argument("--baseline", default="k=f16,v=f16")
    ap.add_argument("--depths", action="store_true")
    args = ap.parse_args()

    rows = {}  # policy -> {label, bytes, bits, trials: {(length, depth, key): (answer, correct)}}
    order = []
    for path in args.reports:
        with open(path) as f:
            report = json.load(f)
        if report.get("eval") != "passkey":
            sys.exit(f"{path}: not a kvpack eval passkey report")
        for r in report["results"]:
            row = rows.get(r["policy"])
            if row is None:
                row = rows[r["policy"]] = {
                    "label": r["label"], "bytes": r["bytes_per_token"],
                    "bits": r["bits_per_value"], "trials": {}}
                order.append(r["policy"])
            for c in r["cells"]:
                for t in c["trials"]:
                    key = (c["length"], round(c["depth"] * 1000), t["key"])
                    old = row["trials"].get(key)
                    if old is not None and old[0] != t["answer"]:
                        sys.exit(f"{path}: {r['policy']} answered {t['answer']!r} to {key}, "
                                 f"another report {old[0]!r}")
                    row["trials"][key] = (t["answer"], t["correct"])

    base = rows.get(args.baseline)
    if base is None:
        sys.exit(f"no report holds the baseline {args.baseline}")
    lengths = sorted({k[0] for row in rows.values() for k in row["trials"]})

    head = ["K/V", "B/token", "bits"] + [length_label(n) for n in lengths]
    head += [f"unlike {base['label']} ({length_label(n)})" for n in lengths]
    head += ["right→wrong / wrong→right"]
    print("| " + " | ".join(head) + " |")
    print("|---" + "|---:" * (len(head) - 1) + "|")
    for policy in order:
        row = rows[policy]
        cells = [row["label"], f"{row['bytes']:.1f}", f"{row['bits']:.2f}"]
        for n in lengths:
            ts = [v for k, v in row["trials"].items() if k[0] == n]
            cells.append(f"{sum(c for _, c in ts)}/{len(ts)}" if ts else "-")
        r2w = w2r = 0
        for n in lengths:
            compared = differ = 0
            for k, (answer, correct) in row["trials"].items():
                b = base["trials"].get(k)
                if k[0] != n or b is None:
                    continue
                compared += 1
                differ += digits(answer) != digits(b[0])
                r2w += b[1] and not correct
                w2r += correct and not b[1]
            cells.append(f"{differ} of {compared}" if compared else "-")
        cells.append("-" if policy == args.baseline else f"{r2w} / {w2r}")
        print("| " + " | ".join(cells) + " |")

    if args.depths:
        for n in lengths:
            depths = sorted({k[1] for row in rows.values() for k in row["trials"] if k[0] == n})
            print(f"\n{length_label(n)} by depth:\n")
            print("| K/V | " + " | ".join(f"{d / 1000:g}%" for d in depths) + " |")
            print("|---" + "|---:" * len(depths) + "|")
            for policy in order:
                row = rows[policy]
                cells = [row["label"]]
                for d in depths:
                    ts = [v for k, v in row["trials"].items() if k[0] == n and k[1] == d]
                    cells.append(f"{sum(c for _, c in ts)}/{len(ts)}" if ts else "-")
                if any(c != "-" for c in cells[1:]):
                    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
