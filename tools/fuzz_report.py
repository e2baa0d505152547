#!/usr/bin/env python3
"""`make fuzz`'s record: the long fuzzing run's results, as a section of BENCHMARKS.md.

    python3 tools/fuzz_report.py build/fuzz-junit.xml BENCHMARKS.md

Reads pytest's JUnit XML: every test case and its outcome, and (pytest run with
--hypothesis-show-statistics) hypothesis's statistics, which it stores there as a
base64 property per test: how many examples each property ran. Writes the section
between the FUZZ_BEGIN and FUZZ_END markers of the report, replacing the one there;
tools/bench.py keeps that section when it rewrites the rest of the file.
"""
import base64
import binascii
import collections
import datetime
import os
import platform
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree  # nosec B405: our own pytest's JUnit file, not untrusted input

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

from pythons import SPLUNK_PYTHONS, pyenv_python  # noqa: E402

FUZZ_BEGIN = "<!-- make fuzz: begin -->"
FUZZ_END = "<!-- make fuzz: end -->"
_EXAMPLES = re.compile(r"- (\d+) passing,? (\d+) failing,? (?:and )?(\d+) invalid")
_STATISTICS = "hypothesis-statistics-"


def junit_cases(root):
    """[(module, test name, outcome, seconds)] from a parsed JUnit XML file."""
    cases = []
    for case in root.iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "failed"
            elif child.tag == "skipped":
                outcome = "xfailed" if "xfail" in (child.get("type") or "") + (child.get("message") or "") \
                    else "skipped"
        cases.append((case.get("classname", "").rsplit(".", 1)[-1], case.get("name", ""), outcome,
                      float(case.get("time") or 0)))
    return cases


def examples_run(root):
    """{test id: (passing, failing, invalid)}, summed over hypothesis's phases, from the statistics
    pytest's hypothesis plugin stores in the JUnit XML."""
    found = {}
    for prop in root.iter("property"):
        name = prop.get("name", "")
        if not name.startswith(_STATISTICS):
            continue
        try:
            text = base64.b64decode(prop.get("value", "")).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            continue
        counts = [0, 0, 0]
        for match in _EXAMPLES.finditer(text):
            counts = [total + int(group) for total, group in zip(counts, match.groups())]
        found[name[len(_STATISTICS):]] = tuple(counts)
    return found


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=30).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def section(cases, examples, budget):
    by_file = collections.OrderedDict()
    for module, name, outcome, seconds in cases:
        entry = by_file.setdefault(module, collections.Counter())
        entry[outcome] += 1
        entry["seconds"] += seconds
    total = collections.Counter(outcome for _, _, outcome, _ in cases)
    interpreters = ["%s (default)" % platform.python_version()]
    for version in SPLUNK_PYTHONS:
        path = pyenv_python(version)  # .../versions/3.9.18/bin/python3.9
        interpreters.append(os.path.basename(os.path.dirname(os.path.dirname(path))) if path else version + " (missing)")
    lines = [FUZZ_BEGIN, "## Fuzzing (`make fuzz`)", "",
             "Written by `tools/fuzz_report.py` at the end of `make fuzz`, the long budget of "
             "`tests/test_fuzz_protocol.py` (hypothesis: generated conversations through the real command and "
             "protocol, checked against the properties in README \"Reliability\") and every case of "
             "`tests/test_protocol_faults.py` under all three interpreters. `make bench` keeps this section.", "",
             "| | |", "|---|---|",
             "| date | %s |" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
             "| git commit | %s |" % _commit(),
             "| budget | `CLASSIFYPORT_FUZZ=long`, %s examples per property test |" % budget,
             "| interpreters | %s |" % ", ".join(interpreters),
             "| result | %d passed, %d failed, %d skipped, %d xfailed, in %.0f s |"
             % (total["passed"], total["failed"], total["skipped"], total["xfailed"],
                sum(seconds for _, _, _, seconds in cases)),
             "", "| test file | passed | failed | skipped | seconds |", "|---|---:|---:|---:|---:|"]
    for module, counts in by_file.items():
        lines.append("| `%s` | %d | %d | %d | %.0f |" % (module, counts["passed"], counts["failed"],
                                                         counts["skipped"] + counts["xfailed"], counts["seconds"]))
    if examples:
        lines += ["", "Examples hypothesis ran (generate and replay phases):", "",
                  "| property test | passing | failing | invalid |", "|---|---:|---:|---:|"]
        for test_id, (passing, failing, invalid) in sorted(examples.items()):
            lines.append("| `%s` | %s | %s | %s |" % (test_id.split("::", 1)[1], "{:,}".format(passing),
                                                      "{:,}".format(failing), "{:,}".format(invalid)))
    lines.append(FUZZ_END)
    return "\n".join(lines)


def replace_section(text, new_section):
    """`text` with its fuzz section replaced by `new_section` (appended when it has none)."""
    if FUZZ_BEGIN in text and FUZZ_END in text:
        head, rest = text.split(FUZZ_BEGIN, 1)
        tail = rest.split(FUZZ_END, 1)[1]
        return head + new_section + tail
    return text.rstrip("\n") + "\n\n" + new_section + "\n"


def kept_section(text):
    """The fuzz section of an existing report, or None (for tools/bench.py)."""
    if FUZZ_BEGIN in text and FUZZ_END in text:
        return FUZZ_BEGIN + text.split(FUZZ_BEGIN, 1)[1].split(FUZZ_END, 1)[0] + FUZZ_END
    return None


def main(argv):
    if len(argv) != 2:
        print("usage: fuzz_report.py JUNIT_XML REPORT", file=sys.stderr)
        return 2
    junit, report = argv
    try:
        root = ElementTree.parse(junit).getroot()  # nosec B314: our own pytest's JUnit file
        text = ""
        if os.path.exists(report):
            with open(report, encoding="utf-8") as handle:
                text = handle.read()
    except (OSError, ElementTree.ParseError) as error:
        print("fuzz_report: %s" % error, file=sys.stderr)
        return 2
    cases = junit_cases(root)
    budget = os.environ.get("CLASSIFYPORT_FUZZ_EXAMPLES", "1000")
    with open(report, "w", encoding="utf-8") as handle:
        handle.write(replace_section(text, section(cases, examples_run(root), budget)))
    print("fuzz_report: %d test cases written into %s" % (len(cases), report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
