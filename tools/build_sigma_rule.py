#!/usr/bin/env python3
"""Regenerate sigma/classifyport_c2_common_ports.yml, the Sigma twin of the default detection.

The rule lists the same processes and ports as the app's lookups, and like the
command ignores inbound connections (Initiated: 'false'). It lives in the
repository for teams on other SIEMs; it is not part of the Splunk package.

Usage: python3 tools/build_sigma_rule.py [--check]
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bin"))

from portclassify import lookups  # noqa: E402

RULE = os.path.join(ROOT, "sigma", "classifyport_c2_common_ports.yml")
HEAD = """\
title: Script Interpreter, LOLBin or Unusual System Process Connecting on a Commonly Used Port
id: 6f1c2a7e-3b55-4d0e-9a61-5c2f0d8e4b17
status: experimental
description: |
    Detects script interpreters, living-off-the-land binaries and unusual system processes
    initiating network connections on commonly used ports, a way to hide command and control
    in ordinary traffic. Generated from the classifyport Splunk app's lookups
    (tools/build_sigma_rule.py); the app's | classifyport command applies the same lists.
references:
    - https://attack.mitre.org/techniques/T1071/
    - https://attack.mitre.org/techniques/T1571/
    - https://lolbas-project.github.io/
author: classifyport developers
date: 2026-11-28
tags:
    - attack.command-and-control
    - attack.t1071.001
    - attack.t1071.004
    - attack.t1071.003
    - attack.t1571
logsource:
    category: network_connection
    product: windows
detection:
    selection_image:
        Image|endswith:
"""
TAIL = """\
    filter_main_inbound:
        Initiated: 'false'
    condition: selection_image and selection_port and not filter_main_inbound
falsepositives:
    - PowerShell-based IT automation calling internal or cloud REST APIs over HTTPS
    - certutil.exe or bitsadmin.exe used by software distribution to fetch packages
    - Build servers running csc.exe or msbuild.exe against NuGet or internal artifact repositories
    - Monitoring scripts using wscript.exe or cscript.exe against local management interfaces
level: medium
"""


def render(app_root=ROOT):
    names = lookups.load_processes(app_root)
    ports = lookups.load_ports(app_root)
    lines = [HEAD.rstrip("\n")]
    for name in sorted(names):
        lines.append("            - '\\%s'" % name)
    lines.append("    selection_port:")
    lines.append("        DestinationPort:")
    for low, high in ports.ranges:
        lines.extend("            - %d" % port for port in range(low, high + 1))
    return "\n".join(lines) + "\n" + TAIL


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed rule is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        with open(RULE, encoding="utf-8") as handle:
            if handle.read() != text:
                print("%s is stale: run tools/build_sigma_rule.py" % RULE, file=sys.stderr)
                return 1
        return 0
    os.makedirs(os.path.dirname(RULE), exist_ok=True)
    with open(RULE, "w", encoding="utf-8") as handle:
        handle.write(text)
    print("wrote %s" % RULE, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
