#!/usr/bin/env python
r"""Benchmark yardstick (not shipped): the original SPL detection written naively on splunklib.

What a first port of the search to a custom command looks like: a
StreamingCommand that, per event, evaluates the original search's evals and
regular expressions in order (tonumber, the port IN list, replace() to the
basename, lower() and three match() regexes, the IsInternal regex, the label
case()) on the SDK's per-record path.

    mode=filter   (default) the two `where`s apply: only labelled events return
    mode=annotate every event returns with the evals' fields (no `where`)

The lists and regexes are copied by hand from the original search in
../shared/seed/original-detection.txt (this file is a bench-only yardstick, never
packaged); tests/test_bench.py checks that it labels exactly what the independent
evaluator tests/oracle_spl.py, which parses that seed text, labels. The regexes
are compiled once, as any reasonable author would; `re` would cache them anyway.
"""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.environ.get("CLASSIFYPORT_BENCH_BIN") or os.path.join(ROOT, "bin"))

from splunklib.searchcommands import Configuration, Option, StreamingCommand, dispatch, validators  # noqa: E402

# From the original SPL (seed text), verbatim:
#   | eval DestPort=tonumber(DestinationPort)
#   | where DestPort IN (80, 443, 53, 25, 22, 3389, 135)
#   | eval ImageBasename=replace(Image, ".*\\\\", "")
#   | eval IsScriptInterpreter=case(match(lower(ImageBasename), "(powershell|pwsh|cmd|wscript|cscript|mshta|wmic)\.exe"), 1, true(), 0)
#   | eval IsLOLBin=case(match(lower(ImageBasename), "(rundll32|regsvr32|certutil|bitsadmin|msbuild|csc|installutil|regasm|regsvcs|ieexec|expand|extrac32|makecab|pcalua|hh|xwizard)\.exe"), 1, true(), 0)
#   | eval IsUnusualSystem=case(match(lower(ImageBasename), "(notepad|calc|mspaint|wordpad|write|winver|charmap|snippingtool)\.exe"), 1, true(), 0)
#   | where IsScriptInterpreter=1 OR IsLOLBin=1 OR IsUnusualSystem=1
#   | eval IsInternal=if(match(DestinationIp, "^(10\.|172\.(1[6-9]|2[0-9]|3[0-1])\.|192\.168\.)"), 1, 0)
#   | eval SuspicionLabel=case(IsScriptInterpreter=1, "ScriptInterpreter", IsLOLBin=1, "LOLBin",
#                              IsUnusualSystem=1, "UnusualSystemProcess", true(), "Unknown")
PORTS = (80, 443, 53, 25, 22, 3389, 135)
BASENAME = re.compile(r".*\\")  # the SPL literal ".*\\\\" is the regex .*\\
SCRIPT_INTERPRETER = re.compile(r"(powershell|pwsh|cmd|wscript|cscript|mshta|wmic)\.exe")
LOLBIN = re.compile(r"(rundll32|regsvr32|certutil|bitsadmin|msbuild|csc|installutil|regasm|regsvcs|ieexec|expand"
                    r"|extrac32|makecab|pcalua|hh|xwizard)\.exe")
UNUSUAL_SYSTEM = re.compile(r"(notepad|calc|mspaint|wordpad|write|winver|charmap|snippingtool)\.exe")
INTERNAL = re.compile(r"^(10\.|172\.(1[6-9]|2[0-9]|3[0-1])\.|192\.168\.)")
# Splunk tonumber(): a decimal number, nothing around it (no spaces), else null.
NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
INTEGER = re.compile(r"[+-]?[0-9]+\Z")


def first(value):
    """A multivalue field (a list) evaluates as its first value; a missing one is null (None)."""
    if isinstance(value, list):
        return value[0] if value else None
    return value


def tonumber(value):
    if value is None or not NUMBER.match(value):
        return None
    if INTEGER.match(value):
        return int(value, 10)
    return float(value)


@Configuration(distributed=True)
class NaiveCommand(StreamingCommand):
    mode = Option(default="filter", validate=validators.Set("filter", "annotate"))

    def stream(self, records):
        annotate = self.mode == "annotate"
        for record in records:
            port = tonumber(first(record.get("DestinationPort")))
            if port is None or port not in PORTS:
                if not annotate:
                    continue
            image = first(record.get("Image"))
            base = None if image is None else BASENAME.sub("", image)
            low = None if base is None else base.lower()
            script = 1 if low is not None and SCRIPT_INTERPRETER.search(low) else 0
            lolbin = 1 if low is not None and LOLBIN.search(low) else 0
            unusual = 1 if low is not None and UNUSUAL_SYSTEM.search(low) else 0
            if not (script or lolbin or unusual) and not annotate:
                continue
            dest = first(record.get("DestinationIp"))
            internal = 1 if dest is not None and INTERNAL.search(dest) else 0
            if script:
                label = "ScriptInterpreter"
            elif lolbin:
                label = "LOLBin"
            elif unusual:
                label = "UnusualSystemProcess"
            else:
                label = "Unknown"
            record["DestPort"] = port
            record["ImageBasename"] = base
            record["IsScriptInterpreter"] = script
            record["IsLOLBin"] = lolbin
            record["IsUnusualSystem"] = unusual
            record["IsInternal"] = internal
            record["SuspicionLabel"] = label
            yield record


if __name__ == "__main__":
    dispatch(NaiveCommand, sys.argv, sys.stdin, sys.stdout, __name__)
