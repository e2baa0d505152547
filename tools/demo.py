#!/usr/bin/env python3
"""`make demo`: run `| classifyport` over the bundled sample events, as splunkd would.

Reads samples/sysmon_eid3.jsonl (events we wrote, see samples/README.md), sends
them to bin/classifyport.py over Search Command Protocol v2 in a few execute
chunks (default filter mode, no options: `index=... EventCode=3 | classifyport`)
and prints the original search's table, newest first, then one summary line.

Standard library only, plus tools/scpv2.py. Exits non-zero with a message when
the command fails.
"""
import argparse
import collections
import datetime
import json
import os
import subprocess
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

import scpv2  # noqa: E402

SAMPLES = os.path.join(ROOT, "samples", "sysmon_eid3.jsonl")
# The original search's `| table ...`, in its order; `| sort - _time` puts the newest first.
COLUMNS = ("_time", "host", "User", "ImageBasename", "CommandLine", "ParentImage",
           "DestinationIp", "DestPort", "IsInternal", "SuspicionLabel")


def load_events(path):
    events = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as error:
                raise SystemExit("demo: %s line %d is not JSON: %s" % (path, number, error))
            if not isinstance(event, dict):
                raise SystemExit("demo: %s line %d is not a JSON object" % (path, number))
            events.append({name: value if isinstance(value, str) else json.dumps(value)
                           for name, value in event.items() if value is not None})
    if not events:
        raise SystemExit("demo: no events in %s" % path)
    return events


def split(events, count):
    size = -(-len(events) // count)
    return [events[i:i + size] for i in range(0, len(events), size)]


def iso_utc(epoch_text):
    try:
        moment = datetime.datetime.fromtimestamp(float(epoch_text), tz=datetime.timezone.utc)
    except (TypeError, ValueError, OverflowError):
        return epoch_text or ""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (moment.microsecond // 1000)


def newest_first(records):
    def key(record):
        try:
            return -float(record.get("_time", ""))
        except ValueError:
            return float("inf")  # no usable _time: last
    return sorted(records, key=key)  # stable: equal times keep the command's order


def format_table(rows):
    cells = [list(COLUMNS)] + [[row.get(column, "") for column in COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", default=SAMPLES, help="JSON lines of events (default: %(default)s)")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the command")
    parser.add_argument("--chunks", type=int, default=3, help="execute chunks to send (default: %(default)s)")
    args = parser.parse_args(argv)

    if not os.path.exists(os.path.join(ROOT, "bin", "splunklib", "__init__.py")):
        print("demo: bin/splunklib is missing; run `make demo` (it vendors the Splunk SDK first) or `make vendor`",
              file=sys.stderr)
        return 2
    events = load_events(args.samples)
    chunks = split(events, max(1, args.chunks))
    try:
        result = scpv2.run([], chunks, python=args.python, search="search index=main EventCode=3 | classifyport")
    except (OSError, subprocess.SubprocessError) as error:
        print("demo: could not run bin/classifyport.py with %s: %s" % (args.python, error), file=sys.stderr)
        return 1
    except ValueError as error:
        print("demo: bin/classifyport.py did not answer in SCP v2: %s" % error, file=sys.stderr)
        return 1
    errors = result.messages("ERROR")
    if result.returncode != 0 or errors or len(result.chunks) != len(chunks) + 2:
        print("demo: | classifyport failed (exit status %s)" % result.returncode, file=sys.stderr)
        for text in errors:
            print("  error: %s" % text, file=sys.stderr)
        tail = result.stderr.decode("utf-8", "replace").strip()
        if tail:
            print("  stderr: %s" % tail[-2000:], file=sys.stderr)
        return 1
    for text in result.messages("WARN"):
        print("classifyport warning: %s" % text, file=sys.stderr)

    rows = []
    for record in newest_first(result.records):
        row = {column: record.get(column, "") for column in COLUMNS}
        row["_time"] = iso_utc(record.get("_time"))
        rows.append(row)
    labels = collections.Counter(row["SuspicionLabel"] for row in rows)

    print("index=main EventCode=3 | classifyport    (%d sample events from %s, %d SCP v2 chunks)"
          % (len(events), os.path.relpath(args.samples, ROOT), len(chunks)))
    print()
    print(format_table(rows))
    print()
    print("%d events in, %d labelled out: %s" % (
        len(events), len(rows),
        ", ".join("%s=%d" % (label, count) for label, count in sorted(labels.items())) or "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
