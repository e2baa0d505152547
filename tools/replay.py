#!/usr/bin/env python3
"""Replay exported Sysmon telemetry through the packaged `| classifyport` command, as splunkd would.

    python tools/replay.py [--format auto|evtx|xml|jsonl|csv] [--package dist/classifyport-<v>.tar.gz
                           | --app-dir DIR] [--python PATH] [--chunk-size N] [--no-enrich]
                           [--output table|csv|json] [--out FILE] [-- <classifyport options>] FILE...

Reads Sysmon EVTX files, Splunk XmlWinEventLog raw events (one a line or multi-line),
JSON lines (NXLog/logstash flat exports, winlogbeat `event_data`/`winlog.event_data`)
and CSV exported from Splunk (tools/replay_formats.py), with fields named as the
Splunk Add-on for Sysmon extracts them. Event ID 3 events are enriched from their
process's Event ID 1 by host and ProcessGuid (tools/enrich.py replays the app's
`classifyport_enrich_process` macro, read from the package) unless --no-enrich; only
Event ID 3 events go to the command (records without any EventID are passed as they
are, for `profile=cim` or `profile=mde` data). The command runs from the package
(extracted to a temporary folder) over Search Command Protocol v2 (tools/scpv2.py),
with the options given after `--` (e.g. `mode=annotate profile=sysmon ports=80,443`).

Output: the original search's table (as `make demo` prints it), or every returned
record as CSV (Splunk's `__mv_` columns for multivalue fields) or JSON lines.
Progress and problems go to stderr. Exit status: 0 done, 1 the command failed,
2 bad usage or an input that cannot be read (one line, no traceback).
"""
import argparse
import collections
import contextlib
import csv
import json
import os
import re
import shutil
import subprocess  # nosec B404
import sys
import tarfile
import tempfile
import time

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

import demo  # noqa: E402  (the table printer make demo uses)
import enrich  # noqa: E402
import replay_formats  # noqa: E402
import scpv2  # noqa: E402
from replay_formats import Problems, ReplayInputError  # noqa: E402

APP_ID = "classifyport"
COMMAND_REL = os.path.join("bin", "classifyport.py")
DEFAULT_CHUNK = 50000  # splunkd sends at most 50,000 records per execute chunk
_OPTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)\Z")


def version():
    with open(os.path.join(ROOT, "VERSION"), encoding="utf-8") as handle:
        return handle.read().strip()


def default_package():
    return os.path.join(ROOT, "dist", "%s-%s.tar.gz" % (APP_ID, version()))


class ReplayError(Exception):
    """The command could not run or failed; exit status 1."""


class Progress(object):
    """Progress lines on stderr: records read, at most every `seconds` or every `records`."""

    def __init__(self, stream=None, seconds=5.0, records=100000, enabled=True):
        self.stream = stream if stream is not None else sys.stderr
        self.seconds, self.records, self.enabled = seconds, records, enabled
        self.started = self.last_time = time.monotonic()
        self.last_count = 0

    def tick(self, path, count):
        if not self.enabled:
            return
        now = time.monotonic()
        if count - self.last_count >= self.records or now - self.last_time >= self.seconds:
            self.say("%s: %d records read (%.0f s)" % (path, count, now - self.started))
            self.last_time, self.last_count = now, count

    def say(self, text):
        if self.enabled:
            self.stream.write("replay: %s\n" % text)
            self.stream.flush()

    def reset(self):
        self.last_count = 0


# ---------------------------------------------------------------- reading

def load_records(paths, fmt="auto", problems=None, progress=None):
    """(records, [(path, format, count)]) from every file, in order."""
    problems = problems if problems is not None else Problems()
    progress = progress or Progress(enabled=False)
    records, files = [], []
    for path in paths:
        detected, reader = replay_formats.read_file(path, problems, fmt)
        progress.reset()
        count = 0
        for record in reader:
            records.append(record)
            count += 1
            if count % 1000 == 0:
                progress.tick(path, count)
        files.append((path, detected, count))
    return records, files


def event_code(record):
    """The record's EventCode as an int (EventID when it has no EventCode); None when it has neither."""
    value = record.get("EventCode")
    if value in (None, ""):
        value = record.get("EventID")
    if isinstance(value, list):
        value = value[0] if value else None
    if value in (None, ""):
        return None
    if not _NUMBER.match(str(value)):  # as the macro's EventCode=N compares: a plain decimal number
        return -1
    number = float(value)
    return int(number) if number == int(number) else -1


# Fields naming the log or provider a record came from; when a record has any, one must name Sysmon
# (the search's `sourcetype=XmlWinEventLog:Microsoft-Windows-Sysmon/Operational`).
SOURCE_FIELDS = ("Channel", "ProviderName", "SourceName", "source", "sourcetype", "log_name", "source_name",
                 "winlog.channel", "winlog.provider_name", "event.provider")


def is_sysmon(record):
    """False when the record names its log or provider and none of them is Sysmon's; True otherwise."""
    named = False
    for name in SOURCE_FIELDS:
        value = record.get(name)
        for item in (value if isinstance(value, list) else [value]):
            if isinstance(item, str) and item:
                named = True
                if "sysmon" in item.lower():
                    return True
    return not named


def code_summary(by_code):
    """`EventID 1: 2, EventID 3: 4, not Sysmon: 1` from Selection.by_code."""
    def key(item):
        name = item[0]
        return (0, int(name), "") if name.lstrip("-").isdigit() and name != "-1" else (1, 0, name)
    names = {"none": "no EventID", "-1": "EventID not a number", "not Sysmon": "not Sysmon"}
    return ", ".join("%s: %d" % (names.get(name, "EventID " + name), count)
                     for name, count in sorted(by_code.items(), key=key)) or "nothing"


class Selection(object):
    """What goes to the command, with counts for the report."""

    def __init__(self):
        self.by_code = collections.Counter()
        self.events = []
        self.enriched = 0
        self.without_code = 0


def select_for_command(records, do_enrich=True, macros_path=None):
    """Sysmon Event ID 3 records (enriched from Event ID 1 unless do_enrich is false), plus records without any EventID.

    A record whose Channel, provider, source or sourcetype names another log than
    Sysmon's is left out, as the search's sourcetype leaves it out.
    Order is kept. Enrichment is the app's macro replayed by tools/enrich.py,
    read from `macros_path` (the package's default/macros.conf).
    """
    selection = Selection()
    codes = [event_code(record) if is_sysmon(record) else "other" for record in records]
    for code in codes:
        selection.by_code["none" if code is None else ("not Sysmon" if code == "other" else str(code))] += 1
    selection.without_code = selection.by_code.get("none", 0)
    eid3 = [record for record, code in zip(records, codes) if code == 3]
    if do_enrich and eid3:
        sysmon = [record for record, code in zip(records, codes) if code not in (None, "other")]
        steps = enrich.load_steps(macros_path or enrich.MACROS_CONF)
        enriched = enrich.enrich(sysmon, steps)
        if len(enriched) != len(eid3):
            raise ReplayError("the enrichment returned %d Event ID 3 events for %d" % (len(enriched), len(eid3)))
        for before, after in zip(eid3, enriched):
            if any(after.get(name) not in (None, "") and before.get(name) in (None, "")
                   for name in ("CommandLine", "ParentImage", "OriginalFileName")):
                selection.enriched += 1
        eid3 = enriched
    it = iter(eid3)
    for record, code in zip(records, codes):
        if code == 3:
            selection.events.append(next(it))
        elif code is None:
            selection.events.append(record)
    return selection


# ---------------------------------------------------------------- the app

def _safe_extract(archive, target):
    members = archive.getmembers()
    for member in members:
        name = os.path.normpath(member.name)
        if name.startswith(("..", os.sep)) or os.path.isabs(member.name) or member.issym() or member.islnk():
            raise ReplayInputError("refusing to extract %r from the package" % member.name)
    # Every member was checked above (no absolute path, no "..", no link).
    if hasattr(tarfile, "data_filter"):
        archive.extractall(target, filter="data")
    else:
        archive.extractall(target)  # nosec B202


@contextlib.contextmanager
def prepared_app(package=None, app_dir=None):
    """Yield the app root to run: the --app-dir tree, or the package extracted into a temporary folder."""
    if app_dir:
        app_dir = os.path.abspath(app_dir)
        if not os.path.isfile(os.path.join(app_dir, COMMAND_REL)):
            raise ReplayInputError("%s: no %s there (give the app's source tree or an extracted package)"
                                   % (app_dir, COMMAND_REL))
        if not os.path.isfile(os.path.join(app_dir, "bin", "splunklib", "__init__.py")):
            raise ReplayInputError("%s: bin/splunklib is missing; run `make vendor`" % app_dir)
        yield app_dir
        return
    package = package or default_package()
    if not os.path.isfile(package):
        raise ReplayInputError("%s: no such package; run `make package` first (or give --package or --app-dir)"
                               % package)
    temp = tempfile.mkdtemp(prefix="classifyport-replay-")
    try:
        try:
            with tarfile.open(package, "r:*") as archive:
                _safe_extract(archive, temp)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise ReplayInputError("%s: not a readable app package: %s" % (package, error))
        roots = [os.path.join(temp, name) for name in sorted(os.listdir(temp))
                 if os.path.isfile(os.path.join(temp, name, COMMAND_REL))]
        if len(roots) != 1:
            raise ReplayInputError("%s: the package has no %s/%s" % (package, APP_ID, COMMAND_REL))
        yield roots[0]
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def search_string(args):
    return "search sourcetype=\"XmlWinEventLog:Microsoft-Windows-Sysmon/Operational\" EventCode=3 | classifyport%s" % (
        "".join(" " + arg for arg in args))


def run_command(events, args, app_root, python=None, chunk_size=DEFAULT_CHUNK, timeout=3600):
    """Run the app's bin/classifyport.py over SCP v2 on `events` (chunks of `chunk_size`); the scpv2 Result."""
    chunk_size = max(1, int(chunk_size))
    chunks = [events[i:i + chunk_size] for i in range(0, len(events), chunk_size)]
    command = os.path.join(app_root, COMMAND_REL)
    try:
        result = scpv2.run(list(args), chunks, python=python, command=command, timeout=timeout,
                           search=search_string(args), app_root=app_root,
                           dispatch_dir=os.path.join(tempfile.gettempdir(), "classifyport-replay-dispatch"))
    except (OSError, subprocess.SubprocessError) as error:
        raise ReplayError("could not run %s with %s: %s" % (command, python or sys.executable, error))
    except ValueError as error:
        raise ReplayError("%s did not answer in SCP v2: %s" % (command, error))
    errors = result.messages("ERROR") + result.messages("FATAL")
    if result.returncode != 0 or errors or len(result.chunks) != len(chunks) + 2:
        lines = ["| classifyport failed (exit status %s)" % result.returncode]
        lines += ["error: %s" % text for text in errors]
        tail = result.stderr.decode("utf-8", "replace").strip()
        if tail and not errors:
            lines.append("stderr: %s" % tail[-2000:])
        raise ReplayError("\n  ".join(lines))
    return result


# ---------------------------------------------------------------- output

def _cell(value, limit):
    if isinstance(value, list):
        value = ", ".join(str(item) for item in value)
    text = re.sub(r"[\x00-\x1f]+", " ", "" if value is None else str(value))
    if limit and len(text) > limit:
        text = text[:max(1, limit - 3)] + "..."
    return text


def table_rows(records, limit=80):
    rows = []
    for record in demo.newest_first(records):
        row = dict((column, _cell(record.get(column, ""), limit)) for column in demo.COLUMNS)
        row["_time"] = demo.iso_utc(record.get("_time"))
        rows.append(row)
    return rows


def write_table(stream, records, header, summary, limit=80):
    stream.write(header + "\n\n")
    stream.write(demo.format_table(table_rows(records, limit)) + "\n\n")
    stream.write(summary + "\n")


def fieldnames_of(records):
    names, seen = [], set()
    for record in records:
        for name in record:
            if name not in seen:
                seen.add(name)
                names.append(name)
    return names


def _mv_encode(values):
    return "$" + "$;$".join(str(value).replace("$", "$$") for value in values) + "$"


def write_csv(stream, records):
    """Every field as a column (first-seen order), then Splunk's `__mv_` column for each multivalue field."""
    names = fieldnames_of(records)
    multi = [name for name in names if any(isinstance(record.get(name), list) for record in records)]
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(names + ["__mv_" + name for name in multi])
    for record in records:
        row = []
        for name in names:
            value = record.get(name, "")
            row.append("\n".join(str(item) for item in value) if isinstance(value, list) else str(value))
        for name in multi:
            value = record.get(name)
            row.append(_mv_encode(value) if isinstance(value, list) and len(value) > 1 else "")
        writer.writerow(row)


def write_json(stream, records):
    """JSON lines: one object a record, a multivalue field as a list of strings."""
    for record in records:
        stream.write(json.dumps(record, ensure_ascii=False) + "\n")


def summary_line(count_in, records):
    labels = collections.Counter(record.get("SuspicionLabel") or "" for record in records)
    labelled = dict((label, count) for label, count in labels.items() if label)
    return "%d events in, %d out, %d labelled: %s" % (
        count_in, len(records), sum(labelled.values()),
        ", ".join("%s=%d" % item for item in sorted(labelled.items())) or "none")


# ---------------------------------------------------------------- command line

def split_argv(argv):
    """(tool arguments, classifyport options, files): `name=value` words are command options; `--` ends tool options."""
    argv = list(argv)
    if "--" in argv:
        cut = argv.index("--")
        before, after = argv[:cut], argv[cut + 1:]
    else:
        before, after = argv, []
    options = [word for word in after if _OPTION.match(word)]
    files = [word for word in after if not _OPTION.match(word)]
    return before, options, files


def build_parser():
    parser = argparse.ArgumentParser(
        prog="replay.py", description=__doc__.splitlines()[0],
        usage="%(prog)s [options] [-- <classifyport options, e.g. mode=annotate profile=sysmon>] FILE...",
        epilog="A FILE whose name looks like name=value must be written ./name=value.")
    parser.add_argument("files", nargs="*", metavar="FILE", help="EVTX, XmlWinEventLog, JSON-lines or CSV files")
    parser.add_argument("--format", default="auto", choices=("auto",) + replay_formats.FORMATS,
                        help="input format (default: sniffed from each file's content)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--package", help="app package to run (default: dist/%s-<VERSION>.tar.gz)" % APP_ID)
    where.add_argument("--app-dir", help="run the command from this app tree instead of a package")
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the command")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK,
                        help="records per SCP v2 execute chunk (default: %(default)s)")
    parser.add_argument("--no-enrich", action="store_true", help="do not enrich Event ID 3 from Event ID 1")
    parser.add_argument("--output", default="table", choices=("table", "csv", "json"),
                        help="table: the original search's table; csv or json: every returned field")
    parser.add_argument("--out", help="write the output to this file instead of stdout")
    parser.add_argument("--max-cell", type=int, default=80,
                        help="table cells longer than this are cut (0: never; default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages on stderr")
    return parser


def main(argv=None, stdout=None, stderr=None):
    stdout = stdout if stdout is not None else sys.stdout
    stderr = stderr if stderr is not None else sys.stderr
    before, options, after_files = split_argv(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(before)
    options = [word for word in args.files if _OPTION.match(word) and not os.path.exists(word)] + options
    files = [word for word in args.files if not (_OPTION.match(word) and not os.path.exists(word))] + after_files
    if not files:
        parser.print_usage(stderr)
        stderr.write("replay: error: give at least one FILE\n")
        return 2
    if args.chunk_size < 1:
        stderr.write("replay: error: --chunk-size must be at least 1\n")
        return 2

    if args.out and not os.path.isdir(os.path.dirname(os.path.abspath(args.out))):
        stderr.write("replay: cannot write %s: no such directory\n" % args.out)
        return 2
    progress = Progress(stream=stderr, enabled=not args.quiet)
    problems = Problems()
    try:
        records, read = load_records(files, args.format, problems, progress)
        for line in problems.lines():
            stderr.write("replay: %s\n" % line)
        with prepared_app(args.package, args.app_dir) as app_root:
            macros = os.path.join(app_root, "default", "macros.conf")
            selection = select_for_command(records, not args.no_enrich, macros)
            progress.say("%d records read from %d file%s (%s); %d sent to | classifyport %s"
                         % (len(records), len(read), "" if len(read) == 1 else "s",
                            code_summary(selection.by_code), len(selection.events), " ".join(options)))
            if selection.without_code:
                progress.say("%d records without an EventID were sent as they are" % selection.without_code)
            if not args.no_enrich:
                progress.say("enrichment from Event ID 1 filled %d events" % selection.enriched)
            if not selection.events:
                stderr.write("replay: no Sysmon Event ID 3 events in %s\n" % ", ".join(files))
            started = time.monotonic()
            result = run_command(selection.events, options, app_root, args.python, args.chunk_size) \
                if selection.events else None
            if result is not None:
                progress.say("| classifyport answered %d records in %.1f s"
                             % (len(result.records), time.monotonic() - started))
    except ReplayInputError as error:
        stderr.write("replay: %s\n" % error)
        return 2
    except enrich.MacroShapeError as error:
        stderr.write("replay: the enrichment macro cannot be replayed: %s\n" % " ".join(str(error).split()))
        return 1
    except ReplayError as error:
        stderr.write("replay: %s\n" % error)
        return 1
    except OSError as error:
        stderr.write("replay: %s\n" % " ".join(str(error).split()))
        return 2
    out_records = result.records if result is not None else []
    if result is not None:
        for text in result.messages("WARN"):
            stderr.write("classifyport warning: %s\n" % re.sub(r"^classifyport:\s*", "", text))

    def emit(stream):
        if args.output == "csv":
            write_csv(stream, out_records)
        elif args.output == "json":
            write_json(stream, out_records)
        else:
            header = "| classifyport%s    (%d events from %s, %d SCP v2 chunk%s)" % (
                "".join(" " + word for word in options), len(selection.events),
                ", ".join(os.path.basename(path) for path in files),
                -(-len(selection.events) // args.chunk_size),
                "" if -(-len(selection.events) // args.chunk_size) == 1 else "s")
            write_table(stream, out_records, header, summary_line(len(selection.events), out_records),
                        args.max_cell)

    if args.out:
        try:
            with open(args.out, "w", encoding="utf-8", newline="") as handle:
                emit(handle)
        except OSError as error:
            stderr.write("replay: cannot write %s: %s\n" % (args.out, error.strerror or error))
            return 2
        progress.say("wrote %d records to %s" % (len(out_records), args.out))
    else:
        emit(stdout)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.stderr.write("replay: interrupted\n")
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
