#!/usr/bin/env python3
"""Regenerate lookups/classifyport_processes.csv from its three origins.

Origins, in the order a name is first claimed (a name keeps its first category):
  original_spl   the three regex alternations of the original SPL search
                 (../shared/seed/original-detection.txt)
  original_test  nslookup.exe, used by the original's own DNS-tunnelling test
  lolbas         network-capable executables of the LOLBAS Project
                 (../shared/data/lolbas/lolbas_binaries.csv), as LOLBin

LOLBAS libraries (.dll, .cpl) and scripts (.vbs) are left out: a Sysmon
NetworkConnect Image is always the executable that hosts them (rundll32,
wscript, cscript), which the lookup already lists.

Usage: python3 tools/build_process_lookup.py [--shared ../shared] [--check]
With --check it exits 1 when the committed lookup differs from a fresh build.
"""
import argparse
import csv
import io
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOOKUP = os.path.join(ROOT, "lookups", "classifyport_processes.csv")
HEADER = ["process", "category", "source"]

# Each eval in the original search names one category by its flag field.
SPL_FLAGS = (
    ("IsScriptInterpreter", "ScriptInterpreter"),
    ("IsLOLBin", "LOLBin"),
    ("IsUnusualSystem", "UnusualSystemProcess"),
)
TEST_NAMES = (("nslookup.exe", "LOLBin", "original_test"),)


def spl_categories(seed_text):
    """Yield (name.exe, category) from the seed's match(lower(ImageBasename), "(a|b)\\.exe") evals."""
    for flag, category in SPL_FLAGS:
        match = re.search(
            r"eval\s+" + flag + r"=case\(\s*match\(lower\(ImageBasename\),\s*\"\(([^)]*)\)\\\.exe\"",
            seed_text,
        )
        if match is None:
            raise SystemExit("seed: no %s eval with a name alternation found" % flag)
        for name in match.group(1).split("|"):
            yield name + ".exe", category


def lolbas_names(lolbas_csv):
    with open(lolbas_csv, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["network_capable"] == "1" and row["name"].lower().endswith(".exe"):
                yield row["name"]


def build(shared):
    with open(os.path.join(shared, "seed", "original-detection.txt"), encoding="utf-8") as handle:
        seed = handle.read()
    rows, seen = [], set()

    def add(name, category, source):
        key = name.lower()
        if key not in seen:
            seen.add(key)
            rows.append((key, category, source))

    for name, category in spl_categories(seed):
        add(name, category, "original_spl")
    for name, category, source in TEST_NAMES:
        add(name, category, source)
    for name in sorted(lolbas_names(os.path.join(shared, "data", "lolbas", "lolbas_binaries.csv")), key=str.lower):
        add(name, "LOLBin", "lolbas")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows)
    return out.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    text = build(args.shared)
    if args.check:
        with open(LOOKUP, encoding="utf-8") as handle:
            if handle.read() != text:
                print("%s is stale: run tools/build_process_lookup.py" % LOOKUP, file=sys.stderr)
                return 1
        return 0
    with open(LOOKUP, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    print("wrote %s (%d processes)" % (LOOKUP, text.count("\n") - 1), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
