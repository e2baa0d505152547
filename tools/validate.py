#!/usr/bin/env python3
"""`make validate`: replay the samples and the real corpus through the packaged command and explain it.

    python tools/validate.py [--package dist/classifyport-<v>.tar.gz | --app-dir DIR]
                             [--python PATH] [--shared DIR] [--no-shared]

Each data set (samples/sysmon_eid3.jsonl; each source of ../shared/data/sysmon,
its Event ID 3 and Event ID 1 files together; ../shared/data/splunk_raw's
XmlWinEventLog events) is read by tools/replay_formats.py, enriched from Event
ID 1 as the app's macro does, and sent to the PACKAGED `| classifyport
mode=annotate` over SCP v2, so every event comes back with the fields that say
why it was or was not labelled. The report gives, per original Atomic Red Team
test (the four of the seed detection) and per data set, what fired (counts by
label), what did not and why (missing field, process not listed, port not
watched, inbound, allowlisted), and the case that cannot fire by design
(bitsadmin: the BITS service's svchost.exe makes the download), with the real
data's evidence.

Exit status 0 when every check holds (the sample events of ART tests 1-3 fire
with their labels, the BITS svchost and the lookalike and inbound samples do
not, every event not labelled has a reason, every data set replays); 1 when a
check fails; 2 when the package or a file cannot be read.
"""
import argparse
import collections
import csv
import glob
import os
import sys

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import replay  # noqa: E402
from replay_formats import Problems, ReplayInputError  # noqa: E402

SAMPLES = os.path.join(ROOT, "samples", "sysmon_eid3.jsonl")
DEFAULT_SHARED = os.path.abspath(os.environ.get("CLASSIFYPORT_SHARED", os.path.join(ROOT, "..", "shared")))
ARGS = ["mode=annotate"]
BITS_DATASET = "cmd_bitsadmin_download_psh_script"

# The four tests of the original detection (../shared/seed/original-detection.txt, "Testing Methodology").
ART_TESTS = (
    {"number": 1, "title": "PowerShell C2 Simulation over HTTPS Port 443", "image": "powershell.exe",
     "port": 443, "dest": "93.184.216.34", "events": 1, "label": "ScriptInterpreter"},
    {"number": 2, "title": "certutil.exe HTTP Download over Port 80", "image": "certutil.exe",
     "port": 80, "dest": "93.184.216.34", "events": 1, "label": "LOLBin"},
    {"number": 3, "title": "DNS Tunneling Simulation via nslookup Long Labels", "image": "nslookup.exe",
     "port": 53, "dest": "8.8.8.8", "events": 10, "label": "LOLBin"},
    {"number": 4, "title": "bitsadmin.exe HTTPS Download over Port 443", "image": "bitsadmin.exe",
     "port": 443, "dest": "93.184.216.34", "events": 1, "label": "LOLBin", "by_design": True},
)
# Sample negatives (samples/README.md): the reason each must come back with.
SAMPLE_NEGATIVES = (
    ("xcmd.exe", None, "process not listed", "lookalike of cmd.exe (the original's unanchored regex labels it)"),
    ("dsregcmd.exe", None, "process not listed", "real-data substring lookalike"),
    ("powershell.exe", "false", "inbound", "inbound PowerShell (Initiated=false)"),
    ("pwsh.exe", "false", "inbound", "inbound pwsh (Initiated=false)"),
)
REASONS = ("missing field", "process not listed", "port not watched", "inbound", "allowlisted", "unexplained")


# ---------------------------------------------------------------- reading the app's lists

def watched_ports(app_root):
    """[(low, high)] from the app's classifyport_ports.csv (a row may hold N-M)."""
    ranges = []
    path = os.path.join(app_root, "lookups", "classifyport_ports.csv")
    with open(path, encoding="utf-8-sig", newline="") as handle:
        for row in csv.DictReader(handle):
            row = dict(((key or "").strip().lower(), (value or "").strip()) for key, value in row.items())
            text = row.get("port", "")
            if not text:
                continue
            low, _, high = text.partition("-")
            try:
                ranges.append((int(low), int(high or low)))
            except ValueError:
                continue
    return ranges


def _port(record):
    try:
        return int(record.get("DestPort", ""))
    except (TypeError, ValueError):
        return None


def _first(value):
    return (value[0] if value else "") if isinstance(value, list) else (value or "")


def basename(record):
    return _first(record.get("ImageBasename")) or _first(record.get("Image")).replace("/", "\\").split("\\")[-1]


def reason(record, ports):
    """Why an annotated record has no label (None when it has one)."""
    if _first(record.get("SuspicionLabel")):
        return None
    if not _first(record.get("ImageBasename")):
        return "missing field"
    port = _port(record)
    if port is None:
        return "missing field"
    listed = any(_first(record.get(name)) == "1" for name in ("IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem"))
    if not listed and not _first(record.get("MatchedOn")):
        return "process not listed"
    if not any(low <= port <= high for low, high in ports):
        return "port not watched"
    if _first(record.get("Initiated")).strip().lower() == "false":
        return "inbound"
    if _first(record.get("Allowlisted")) == "1":
        return "allowlisted"
    return "unexplained"


# ---------------------------------------------------------------- data sets

class DataSet(object):
    def __init__(self, name, paths, note=""):
        self.name, self.paths, self.note = name, paths, note
        self.records = []        # what the command returned (annotated)
        self.by_code = {}
        self.sent = 0
        self.enriched = 0
        self.problems = []
        self.error = None

    def label_counts(self):
        return collections.Counter(_first(r.get("SuspicionLabel")) for r in self.records
                                   if _first(r.get("SuspicionLabel")))

    def reason_counts(self, ports):
        return collections.Counter(reason(r, ports) for r in self.records if reason(r, ports))


def data_sets(shared, use_shared=True):
    sets = [DataSet("samples", [SAMPLES], "our sample events, samples/README.md")]
    if not use_shared:
        return sets
    sysmon = os.path.join(shared, "data", "sysmon")
    for eid3 in sorted(glob.glob(os.path.join(sysmon, "*.eid3.jsonl"))):
        prefix = eid3[:-len(".eid3.jsonl")]
        paths = [eid3] + [path for path in (prefix + ".eid1.jsonl",) if os.path.exists(path) and os.path.getsize(path)]
        sets.append(DataSet(os.path.basename(prefix), paths, "real, ../shared/data/sysmon"))
    raw = os.path.join(shared, "data", "splunk_raw", "xmlwineventlog_sysmon.raw")
    if os.path.exists(raw):
        sets.append(DataSet("splunk_raw", [raw], "real XmlWinEventLog _raw, ../shared/data/splunk_raw"))
    return sets


def replay_set(dataset, app_root, python):
    problems = Problems()
    try:
        records, _ = replay.load_records(dataset.paths, "auto", problems)
    except ReplayInputError as error:
        dataset.error = str(error)
        return
    dataset.problems = problems.lines()
    selection = replay.select_for_command(records, True, os.path.join(app_root, "default", "macros.conf"))
    dataset.by_code = dict(selection.by_code)
    dataset.sent = len(selection.events)
    dataset.enriched = selection.enriched
    if not selection.events:
        return
    try:
        result = replay.run_command(selection.events, ARGS, app_root, python)
    except replay.ReplayError as error:
        dataset.error = " ".join(str(error).split())
        return
    dataset.records = result.records


# ---------------------------------------------------------------- the report

class Report(object):
    def __init__(self):
        self.lines = []
        self.checks = []  # (ok, text)

    def say(self, text=""):
        self.lines.append(text)

    def check(self, ok, text):
        self.checks.append((bool(ok), text))
        self.say("      [%s] %s" % ("PASS" if ok else "FAIL", text))
        return ok


def _counts(counter, order=None):
    keys = order if order else sorted(counter)
    return ", ".join("%s=%d" % (key, counter[key]) for key in keys if counter.get(key)) or "none"


def _matches(record, test, with_dest=True):
    if basename(record).lower() != test["image"]:
        return False
    if _port(record) != test["port"]:
        return False
    return not with_dest or _first(record.get("DestinationIp")) == test["dest"]


def _describe(record, ports):
    why = reason(record, ports)
    outcome = "fired %s" % _first(record.get("SuspicionLabel")) if why is None else "not fired (%s)" % why
    direction = "inbound" if _first(record.get("Initiated")).lower() == "false" else "outbound"
    command = _first(record.get("CommandLine"))
    return "%s -> %s:%s %s%s: %s" % (
        basename(record), _first(record.get("DestinationIp")), _first(record.get("DestPort"))
        or _first(record.get("DestinationPort")), direction,
        (", CommandLine \"%s\"" % (command if len(command) <= 70 else command[:67] + "...")) if command else "", outcome)


def report_art(report, sets, ports):
    samples = sets[0]
    real = [dataset for dataset in sets[1:] if not dataset.error]
    report.say("Original Atomic Red Team tests (seed detection, 'Testing Methodology')")
    for test in ART_TESTS:
        report.say()
        report.say("  Test %d: %s  (%s -> %s:%d)" % (test["number"], test["title"], test["image"], test["dest"],
                                                      test["port"]))
        found = [r for r in samples.records if _matches(r, test)]
        labels = collections.Counter(_first(r.get("SuspicionLabel")) or "(none)" for r in found)
        reasons = collections.Counter(reason(r, ports) for r in found if reason(r, ports))
        report.say("    samples: %d event%s; fired: %s%s" % (
            len(found), "" if len(found) == 1 else "s",
            _counts(collections.Counter(dict((k, v) for k, v in labels.items() if k != "(none)"))),
            ("; not fired: %s" % _counts(reasons)) if reasons else ""))
        if test.get("by_design"):
            report.check(len(found) == test["events"] and labels.get(test["label"]) == test["events"],
                         "the sample bitsadmin.exe event (the test's expected signal) is labelled %s" % test["label"])
            bits = [r for r in samples.records if basename(r).lower() == "svchost.exe"
                    and _first(r.get("DestinationIp")) == test["dest"] and _port(r) == test["port"]]
            report.check(bits and all(reason(r, ports) == "process not listed" for r in bits),
                         "the sample BITS-service svchost.exe -> %s:%d is not labelled (process not listed)"
                         % (test["dest"], test["port"]))
            report.say("    CANNOT FIRE BY DESIGN: bitsadmin.exe only hands the job to the BITS service; the download")
            report.say("    is made by the service's svchost.exe (svchost.exe -k netsvcs -p -s BITS), so real telemetry")
            report.say("    has no bitsadmin.exe network event, and svchost.exe is not listed (it would label all")
            report.say("    service traffic). Hunt BITS jobs in Microsoft-Windows-Bits-Client/Operational (59/60).")
            evidence = [r for dataset in real for r in dataset.records
                        if BITS_DATASET in _first(r.get("_src_path"))]
            if evidence:
                images = collections.Counter(basename(r).lower() for r in evidence)
                report.say("    real evidence, OTRF %s: %d network event%s, by image: %s"
                           % (BITS_DATASET, len(evidence), "" if len(evidence) == 1 else "s", _counts(images)))
                for record in evidence:
                    report.say("      %s" % _describe(record, ports))
                report.check(images.get("bitsadmin.exe", 0) == 0 and images.get("svchost.exe", 0) > 0,
                             "the real bitsadmin dataset's network events are svchost.exe, none bitsadmin.exe")
            else:
                report.say("    real evidence: the OTRF %s data is not here (../shared absent)" % BITS_DATASET)
        else:
            report.check(len(found) == test["events"] and labels.get(test["label"]) == test["events"],
                         "%d sample event%s labelled %s" % (test["events"], "" if test["events"] == 1 else "s",
                                                             test["label"]))
        parts = []
        for dataset in real:
            same = [r for r in dataset.records if _matches(r, test, with_dest=False)]
            if same:
                fired = collections.Counter(_first(r.get("SuspicionLabel")) for r in same
                                            if _first(r.get("SuspicionLabel")))
                missed = collections.Counter(reason(r, ports) for r in same if reason(r, ports))
                parts.append("%s %d (fired: %s%s)" % (dataset.name, len(same), _counts(fired),
                                                      ("; not: %s" % _counts(missed)) if missed else ""))
        if real:
            report.say("    real data, %s on port %d: %s" % (
                test["image"], test["port"], "; ".join(parts) or "no such event in the corpus"))


def report_sets(report, sets, ports):
    report.say("Data sets  (| classifyport %s, enriched from Event ID 1)" % " ".join(ARGS))
    for dataset in sets:
        report.say()
        report.say("  %s  (%s)" % (dataset.name, dataset.note))
        report.say("    files: %s" % ", ".join(os.path.relpath(path, ROOT) for path in dataset.paths))
        if dataset.error:
            report.check(False, "replays: %s" % dataset.error)
            continue
        report.say("    read: %s; %d sent to the command; %d enriched with CommandLine/ParentImage from Event ID 1"
                   % (replay.code_summary(dataset.by_code),
                      dataset.sent, dataset.enriched))
        for line in dataset.problems:
            report.say("    problem: %s" % line)
        labels = dataset.label_counts()
        reasons = dataset.reason_counts(ports)
        report.say("    fired %d: %s" % (sum(labels.values()), _counts(labels)))
        report.say("    not fired %d: %s" % (sum(reasons.values()), _counts(reasons, REASONS)))
        top = collections.Counter("%s:%s" % (basename(r), _first(r.get("DestPort"))) for r in dataset.records
                                  if _first(r.get("SuspicionLabel")))
        if top:
            report.say("    fired most: %s" % ", ".join("%s x%d" % item for item in top.most_common(5)))
        unwatched = collections.Counter("%s:%s" % (basename(r), _first(r.get("DestPort"))) for r in dataset.records
                                        if reason(r, ports) == "port not watched")
        if unwatched:
            report.say("    listed processes on unwatched ports: %s"
                       % ", ".join("%s x%d" % item for item in unwatched.most_common(5)))
        renamed = [r for r in dataset.records if _first(r.get("MatchedOn")) == "OriginalFileName"]
        if renamed:
            report.say("    classified by OriginalFileName from Event ID 1 (renamed or unresolved image): %d, e.g. %s"
                       % (len(renamed), "; ".join("%s = %s, %s" % (
                           basename(r), _first(r.get("OriginalFileName")),
                           ("fired " + _first(r.get("SuspicionLabel"))) if not reason(r, ports)
                           else "not fired (%s)" % reason(r, ports)) for r in renamed[:3])))
        report.check(len(dataset.records) == dataset.sent,
                     "annotate mode returned every event (%d of %d)" % (len(dataset.records), dataset.sent))
        report.check(not reasons.get("unexplained"),
                     "every event not labelled has a reason (%d unexplained)" % reasons.get("unexplained", 0))
        if dataset.name == "samples":
            for image, initiated, why, what in SAMPLE_NEGATIVES:
                found = [r for r in dataset.records if basename(r).lower() == image
                         and (initiated is None or _first(r.get("Initiated")).lower() == initiated)]
                report.check(found and all(reason(r, ports) == why for r in found),
                             "%s: not labelled (%s)" % (what, why))


def validate(app_root, python, shared, use_shared, label):
    ports = watched_ports(app_root)
    sets = data_sets(shared, use_shared)
    for dataset in sets:
        replay_set(dataset, app_root, python)
    report = Report()
    report.say("classifyport validation: %s" % label)
    report.say("watched ports: %s; real data: %s" % (
        ",".join(str(low) if low == high else "%d-%d" % (low, high) for low, high in ports),
        os.path.join(shared, "data") if len(sets) > 1 else "not present (only the samples are replayed)"))
    report.say()
    report_art(report, sets, ports)
    report.say()
    report_sets(report, sets, ports)
    failed = [text for ok, text in report.checks if not ok]
    report.say()
    if failed:
        report.say("Result: FAIL, %d of %d checks failed:" % (len(failed), len(report.checks)))
        for text in failed:
            report.say("  - %s" % text)
    else:
        report.say("Result: PASS, %d checks" % len(report.checks))
    return report, not failed


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    parser = argparse.ArgumentParser(prog="validate.py", description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--package", help="app package (default: dist/classifyport-<VERSION>.tar.gz)")
    where.add_argument("--app-dir", help="run the command from this app tree instead of a package")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the command")
    parser.add_argument("--shared", default=DEFAULT_SHARED, help="the shared folder (default: %(default)s)")
    parser.add_argument("--no-shared", action="store_true", help="replay only the bundled samples")
    args = parser.parse_args(argv)
    label = args.app_dir or os.path.relpath(args.package or replay.default_package(), ROOT)
    try:
        with replay.prepared_app(args.package, args.app_dir) as app_root:
            report, ok = validate(app_root, args.python, args.shared,
                                  not args.no_shared and os.path.isdir(os.path.join(args.shared, "data")), label)
    except ReplayInputError as error:
        stderr.write("validate: %s\n" % error)
        return 2
    except OSError as error:
        stderr.write("validate: %s\n" % error)
        return 2
    stdout.write("\n".join(report.lines) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
