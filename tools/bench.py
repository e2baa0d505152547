#!/usr/bin/env python3
"""`make bench`: `| classifyport` end to end over SCP v2 against its yardsticks; writes BENCHMARKS.md.

    python3 tools/bench.py --package dist/classifyport-<version>.tar.gz --write BENCHMARKS.md
    python3 tools/bench.py --quick --write /tmp/bench.md        # 10,000 events, one run each

What is measured
  Sysmon EID 3 shaped events are generated deterministically (seeded) and encoded
  ONCE per stream as the exact bytes splunkd sends over Search Command Protocol v2
  (tools/scpv2.py's encoding: getinfo, execute chunks of N records, an empty final
  `finished` chunk) into build/bench/streams/. Every command reads the same execute
  bytes from that file through a pipe (its own getinfo chunk first: only the args
  differ) and writes its replies into a pipe the harness reads, counting chunks
  and records. CPU time (user+sys), peak RSS (ru_maxrss) and wall time are those
  of the command's process alone, taken with os.wait4 by a tiny launcher (so the
  harness's own memory never shows up in the child's ru_maxrss, which on Linux
  inherits the spawning process's high-water mark).

Commands (one run, so the ratios compare like with like)
  classifyport mode=filter / mode=annotate, from the PACKAGE (--package is
  extracted into build/bench/app), or from the source tree without --package;
  tools/bench_commands/noop.py   a no-op splunklib StreamingCommand;
  tools/bench_commands/naive.py  the original SPL's evals and regexes per event on splunklib
                                 (mode=filter and mode=annotate);
  tools/bench_commands/floor.py  the raw protocol floor: csv reader/writer, no splunklib.
  The yardsticks import the same vendored splunklib, from the package's bin/.

Suites (runs interleaved across commands; the report gives the median of the runs)
  startup    0 events (getinfo + finished): time to the getinfo reply, CPU, RSS; doubles as warm-up.
             classifyport also under pyenv's Python 3.9 and 3.13 (Splunk's), at least 11 runs each
  main       --events events at --chunk per chunk, full events and the selected-fields stream (--repeat runs)
  chunks     peak RSS at each --chunk-sizes value, --chunk-events events (full events; --aux-repeat runs)
  scaling    throughput and peak RSS at each --scaling event count (full events; --aux-repeat runs)
  allowlist  classifyport from a copy of the app with a 10,000-row allowlist (APP_VARIANTS; rows that
             never match: a third by process name, a third by destination CIDR, a third by host glob,
             so the unindexed rules are checked for every candidate event) on the main streams,
             against the plain app in the same run (goal: at least 80% of its throughput)
  longrun    --longrun-events (10,000,000) and 1/100 as many selected-fields events from pools of
             100,000 images and 1,200,000 destinations, one process each (goal: peak RSS within 10%;
             a 10M-event full stream would be ~28 GB on disk, the selected one is ~1.9 GB)

Adding a scenario: a Scenario is (suite, Command, Stream, repeat). Write a function of the
  parsed options returning Scenarios, register it in SUITES, and add its table to write_report;
  `--suites main,<yours>` then runs it in the same run as the others, so its ratios compare.
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import asdict, dataclass, field, replace  # noqa: F401 (replace: for new scenarios)

TOOLS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TOOLS)
sys.path.insert(0, TOOLS)

import fuzz_report  # noqa: E402
import scpv2  # noqa: E402
from pythons import SPLUNK_PYTHONS, pyenv_python  # noqa: E402

BENCH_COMMANDS = os.path.join(TOOLS, "bench_commands")
WORKDIR = os.path.join(ROOT, "build", "bench")
GENERATOR_VERSION = 1  # bump when the generated events change: cached streams are then regenerated
SEED = 1043
QUICK_EVENTS = 10000

# ------------------------------------------------------------------------------------------------
# Generated events

SELECTED_FIELDS = ("_time", "host", "Image", "DestinationPort", "DestinationIp", "Initiated", "User", "ProcessGuid")

# Listed processes: the original search's 31 names and nslookup.exe (in the process lookup since the
# original's Atomic test 3), at the paths Windows keeps them. Every one is in lookups/classifyport_processes.csv.
LISTED_IMAGES = (
    r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe",
    r"C:\Windows\SysWOW64\WindowsPowerShell\v1.0\powershell.exe",
    r"C:\Windows\System32\WindowsPowerShell\v1.0\PowerShell.exe",
    r"C:\Program Files\PowerShell\7\pwsh.exe",
    r"C:\Windows\System32\cmd.exe",
    r"C:\WINDOWS\system32\cmd.exe",
    r"C:\Windows\System32\wscript.exe",
    r"C:\Windows\System32\cscript.exe",
    r"C:\Windows\System32\mshta.exe",
    r"C:\Windows\System32\wbem\WMIC.exe",
    r"C:\Windows\System32\rundll32.exe",
    r"C:\Windows\SysWOW64\rundll32.exe",
    r"C:\Windows\System32\regsvr32.exe",
    r"C:\Windows\System32\certutil.exe",
    r"C:\Windows\System32\bitsadmin.exe",
    r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\MSBuild.exe",
    r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\csc.exe",
    r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\InstallUtil.exe",
    r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\RegAsm.exe",
    r"C:\Windows\Microsoft.NET\Framework64\v4.0.30319\RegSvcs.exe",
    r"C:\Windows\Microsoft.NET\Framework\v2.0.50727\ieexec.exe",
    r"C:\Windows\System32\expand.exe",
    r"C:\Windows\System32\extrac32.exe",
    r"C:\Windows\System32\makecab.exe",
    r"C:\Windows\System32\pcalua.exe",
    r"C:\Windows\hh.exe",
    r"C:\Windows\System32\xwizard.exe",
    r"C:\Windows\System32\notepad.exe",
    r"C:\Windows\System32\calc.exe",
    r"C:\Windows\System32\mspaint.exe",
    r"C:\Program Files\Windows NT\Accessories\wordpad.exe",
    r"C:\Windows\write.exe",
    r"C:\Windows\System32\winver.exe",
    r"C:\Windows\System32\charmap.exe",
    r"C:\Windows\System32\SnippingTool.exe",
    r"C:\Windows\System32\nslookup.exe",
)
# Benign images: listed nowhere and matched by none of the original regexes (tests check both).
BENIGN_IMAGES = (
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Windows\System32\svchost.exe",
    r"C:\Program Files\Mozilla Firefox\firefox.exe",
    r"C:\ProgramData\Microsoft\Windows Defender\Platform\4.18.23110.3-0\MsMpEng.exe",
    r"C:\Windows\System32\lsass.exe",
    r"C:\Windows\explorer.exe",
    r"C:\Program Files\Microsoft OneDrive\OneDrive.exe",
    r"C:\Program Files\WindowsApps\MSTeams_23320.3027.2591.1505_x64__8wekyb3d8bbwe\ms-teams.exe",
    r"C:\Program Files\SplunkUniversalForwarder\bin\splunkd.exe",
    r"C:\Program Files\SplunkUniversalForwarder\bin\splunk-winevtlog.exe",
    r"C:\Windows\System32\spoolsv.exe",
    r"C:\Windows\System32\services.exe",
    r"C:\Windows\System32\wbem\WmiPrvSE.exe",
    r"C:\Windows\System32\taskhostw.exe",
    r"C:\Program Files\Common Files\microsoft shared\ClickToRun\OfficeClickToRun.exe",
    r"C:\Program Files\Zoom\bin\Zoom.exe",
    r"C:\Program Files\Slack\slack.exe",
    r"C:\Program Files\Microsoft VS Code\Code.exe",
    r"C:\Program Files\Python311\python.exe",
    r"C:\Program Files\Java\jre-1.8\bin\javaw.exe",
    r"C:\Program Files\nodejs\node.exe",
    r"C:\Windows\SystemApps\MicrosoftWindows.Client.CBS_cw5n1h2txyewy\SearchHost.exe",
    r"C:\Windows\System32\RuntimeBroker.exe",
    r"C:\Windows\System32\smartscreen.exe",
    r"C:\Windows\System32\dns.exe",
    r"C:\Windows\System32\dfsrs.exe",
    r"C:\Program Files\Windows Defender Advanced Threat Protection\MsSense.exe",
    r"C:\Program Files (x86)\Google\Update\GoogleUpdate.exe",
    "System",
    "<unknown process>",
)
_VENDORS = ("Contoso", "Fabrikam", "Northwind", "Tailspin", "Litware", "Adatum", "Proseware", "Wingtip")
_TOOLS = ("agent", "updater", "helper", "service", "sync", "collector", "broker", "launcher")
LISTED_PORTS = (80, 443, 53, 25, 22, 3389, 135)
# (port, weight) of outbound connections; listed ports dominate, as on real networks.
_OUTBOUND_PORTS = ((443, 45), (80, 12), (53, 8), (445, 8), (135, 3), (3389, 2), (22, 1), (25, 1), (8080, 3),
                   (5985, 2), (389, 3), (88, 3), (8443, 2), (0, 7))
_INBOUND_PORTS = (445, 3389, 135, 5985, 80, 443, 139)
_PORT_NAMES = {80: "http", 443: "https", 53: "domain", 25: "smtp", 22: "ssh", 3389: "ms-wbt-server",
               135: "epmap", 445: "microsoft-ds", 389: "ldap", 88: "kerberos", 139: "netbios-ssn", 8080: "http-alt"}
_SYSMON_GUID = "{5770385F-C22A-43E0-BF4C-06F5698FFBD9}"
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_RULE_NAMES = ("-", "-", "-", "technique_id=T1071,technique_name=Application Layer Protocol",
               "technique_id=T1036,technique_name=Masquerading", "technique_id=T1218,technique_name=Signed Binary Proxy Execution")
_RAW = ("<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-Sysmon' "
        "Guid='%s'/><EventID>3</EventID><Version>5</Version><Level>4</Level><Task>3</Task><Opcode>0</Opcode>"
        "<Keywords>0x8000000000000000</Keywords><TimeCreated SystemTime='%s'/><EventRecordID>%s</EventRecordID>"
        "<Correlation/><Execution ProcessID='%s' ThreadID='%s'/><Channel>Microsoft-Windows-Sysmon/Operational</Channel>"
        "<Computer>%s</Computer><Security UserID='S-1-5-18'/></System><EventData><Data Name='RuleName'>%s</Data>"
        "<Data Name='UtcTime'>%s</Data><Data Name='ProcessGuid'>%s</Data><Data Name='ProcessId'>%s</Data>"
        "<Data Name='Image'>%s</Data><Data Name='User'>%s</Data><Data Name='Protocol'>%s</Data>"
        "<Data Name='Initiated'>%s</Data><Data Name='SourceIsIpv6'>%s</Data><Data Name='SourceIp'>%s</Data>"
        "<Data Name='SourceHostname'>%s</Data><Data Name='SourcePort'>%s</Data><Data Name='SourcePortName'>%s</Data>"
        "<Data Name='DestinationIsIpv6'>%s</Data><Data Name='DestinationIp'>%s</Data>"
        "<Data Name='DestinationHostname'>%s</Data><Data Name='DestinationPort'>%s</Data>"
        "<Data Name='DestinationPortName'>%s</Data></EventData></Event>")

# What each kind of generated event is, and which command should label it.
KINDS = ("hit", "listed_inbound", "listed_other_port", "benign_outbound", "benign_inbound")


def _xml(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("'", "&apos;")


def _mix(number, salt):
    """A deterministic 32-bit scramble of `number` (Knuth multiplicative hashing)."""
    return ((number + salt) * 2654435761) & 0xFFFFFFFF


def _ipv6(word, prefix):
    groups = prefix + ["%x" % ((word >> shift) & 0xFFFF) for shift in (0, 16)] + ["%x" % (word % 65521), "%x" % (word % 4093)]
    return ":".join(groups[:8])  # Sysmon writes IPv6 uncompressed: fe80:0:0:0:...


def benign_image(number):
    """The image path of benign pool entry `number`: the real names first, then a synthetic long tail."""
    if number < len(BENIGN_IMAGES):
        return BENIGN_IMAGES[number]
    word = _mix(number, 7)
    vendor, tool = _VENDORS[word % len(_VENDORS)], _TOOLS[(word >> 8) % len(_TOOLS)]
    if word & 0x10000:
        return r"C:\Users\user%04d\AppData\Local\%s\%s%05d.exe" % ((word >> 17) % 5000, vendor, tool, number)
    return r"C:\Program Files\%s\%s %d\bin\%s%05d.exe" % (vendor, tool.title(), (word >> 20) % 12, tool, number)


def destination(number):
    """(ip, hostname, is_ipv6) of destination pool entry `number`: ~45% internal, ~45% public IPv4, ~10% IPv6."""
    word = _mix(number, 11)
    bucket = number % 20
    if bucket < 9:
        kind = word % 3
        if kind == 0:
            ip = "10.%d.%d.%d" % ((word >> 8) & 255, (word >> 16) & 255, 1 + (word >> 24) % 254)
        elif kind == 1:
            ip = "172.%d.%d.%d" % (16 + (word >> 8) % 16, (word >> 16) & 255, 1 + (word >> 24) % 254)
        else:
            ip = "192.168.%d.%d" % ((word >> 16) & 255, 1 + (word >> 24) % 254)
        return ip, ("srv%05d.corp.example.com" % (number % 100000)) if word & 1 else "-", False
    if bucket < 18:
        first = (11, 13, 20, 23, 34, 40, 52, 93, 104, 142, 151, 172, 185, 203)[word % 14]
        second = 217 if first == 172 else (word >> 8) & 255  # public 172.217.x.x next to private 172.16-31
        ip = "%d.%d.%d.%d" % (first, second, (word >> 16) & 255, 1 + (word >> 24) % 254)
        host = "-" if word & 3 == 0 else "edge-%d.cdn%d.example.net" % (number, word % 7)
        return ip, host, False
    if bucket == 18:
        return _ipv6(word, ["fe80", "0", "0", "0"]), "-", True
    return _ipv6(word, ["2001", "db8", "%x" % (word % 4096), "0"]), "edge-%d.v6.example.net" % number, True


class Host:
    __slots__ = ("name", "fqdn", "ip", "ip6", "sysmon_pid")

    def __init__(self, number):
        word = _mix(number, 3)
        self.name = ("WKS-%04d" if number % 8 else "SRV-%04d") % number
        self.fqdn = self.name.lower() + ".corp.example.com"
        self.ip = "10.%d.%d.%d" % (20 + number // 60000, (number // 250) % 240, 1 + number % 250)
        self.ip6 = _ipv6(word, ["fe80", "0", "0", "0"])
        self.sysmon_pid = str(1000 + word % 9000)


def _weighted(pairs):
    table = []
    for value, weight in pairs:
        table.extend([value] * weight)
    return tuple(table)


_OUTBOUND_TABLE = _weighted(_OUTBOUND_PORTS)
_USERS = ("NT AUTHORITY\\SYSTEM",) * 8 + ("NT AUTHORITY\\NETWORK SERVICE",) * 2 + ("NT AUTHORITY\\LOCAL SERVICE",)


def generate_events(count, seed=SEED, images=2000, dests=20000, hosts=400):
    """Yield (kind, event) for `count` deterministic Sysmon EID 3 events as Splunk extracts them.

    About 5% are `hit` (a listed process on a listed port, outbound: what classifyport
    labels), 1% `listed_inbound` (the same, but Initiated=false), 1.5% `listed_other_port`,
    the rest benign images (a fifth inbound). `images` and `dests` are the sizes of the
    benign-image and destination pools the events draw from (skewed: a few are frequent).
    Event i is the same whatever `count` is, so a shorter stream is a prefix of a longer one.
    """
    rng = random.Random(seed)
    host_pool = [Host(number) for number in range(hosts)]
    moment = 1700000000.0
    record_id = 1000000
    for serial in range(count):
        moment += rng.random() * 0.01
        record_id += 1
        host = host_pool[int(hosts * rng.random() ** 2)]
        roll = rng.random()
        inbound = False
        if roll < 0.05:
            kind, image = "hit", LISTED_IMAGES[int(len(LISTED_IMAGES) * rng.random() ** 1.5)]
            port = LISTED_PORTS[int(len(LISTED_PORTS) * rng.random() ** 2)]
        elif roll < 0.06:
            kind, image, inbound = "listed_inbound", rng.choice(LISTED_IMAGES), True
            port = rng.choice(LISTED_PORTS)
        elif roll < 0.075:
            kind, image = "listed_other_port", rng.choice(LISTED_IMAGES)
            port = rng.choice((8080, 445, 5985, 8443, 1433, 49152 + rng.randrange(16000)))
        else:
            image = benign_image(int(images * rng.random() ** 3))
            inbound = rng.random() < 0.2
            kind = "benign_inbound" if inbound else "benign_outbound"
            port = rng.choice(_INBOUND_PORTS) if inbound else rng.choice(_OUTBOUND_TABLE)
            if port == 0:
                port = 1024 + rng.randrange(64000)
        remote_ip, remote_name, ipv6 = destination(int(dests * rng.random() ** 2))
        local_ip = host.ip6 if ipv6 else host.ip
        ephemeral = str(49152 + rng.randrange(16383))
        if inbound:
            src_ip, src_name, src_port = remote_ip, remote_name, ephemeral
            dest_ip, dest_name, dest_port = local_ip, host.fqdn, str(port)
        else:
            src_ip, src_name, src_port = local_ip, host.fqdn, ephemeral
            dest_ip, dest_name, dest_port = remote_ip, remote_name, str(port)
        user = _USERS[rng.randrange(len(_USERS))] if rng.random() < 0.55 else "CORP\\user%04d" % rng.randrange(5000)
        guid = "{%08X-%04X-%04X-0000-%012X}" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(16),
                                               rng.getrandbits(48))
        pid = str(rng.randrange(200, 30000))
        protocol = "udp" if port == 53 and rng.random() < 0.8 else "tcp"
        whole = int(moment)
        millis = int((moment - whole) * 1000)
        tm = time.gmtime(whole)
        utc = "%04d-%02d-%02d %02d:%02d:%02d.%03d" % (tm.tm_year, tm.tm_mon, tm.tm_mday, tm.tm_hour, tm.tm_min,
                                                      tm.tm_sec, millis)
        system_time = "%sT%s%04dZ" % (utc[:10], utc[11:], rng.randrange(10000))
        src_port_name = "-"
        dest_port_name = _PORT_NAMES.get(port, "-") if rng.random() < 0.9 else ""
        rule = _RULE_NAMES[rng.randrange(len(_RULE_NAMES))]
        six = "true" if ipv6 else "false"
        initiated = "false" if inbound else "true"
        thread = str(rng.randrange(1000, 9000))
        raw = _RAW % (_SYSMON_GUID, system_time, record_id, host.sysmon_pid, thread, host.fqdn, _xml(rule), utc, guid,
                      pid, _xml(image), _xml(user), protocol, initiated, six, src_ip, _xml(src_name), src_port,
                      src_port_name, six, dest_ip, _xml(dest_name), dest_port, dest_port_name)
        base = image[image.rfind("\\") + 1:]
        event = {
            "_time": "%d.%03d" % (whole, millis), "_raw": raw, "_serial": str(serial),
            "_cd": "%d:%d" % (40 + serial // 1000000, 1000 + serial % 1000000),
            "_bkt": "wineventlog~%d~4C1F2A0E-7D55-4A5B-9C8E-1B2D3F4A5B6C" % (40 + serial // 1000000),
            "_si": ["idx-01", "wineventlog"], "_indextime": str(whole + 2), "_sourcetype": "XmlWinEventLog", "_kv": "1",
            "host": host.name, "source": "XmlWinEventLog:Microsoft-Windows-Sysmon/Operational",
            "sourcetype": "XmlWinEventLog", "index": "wineventlog", "linecount": "1",
            "punct": "<_='://../////'><><_=-_=''>", "splunk_server": "idx-01",
            "date_hour": str(tm.tm_hour), "date_mday": str(tm.tm_mday), "date_minute": str(tm.tm_min),
            "date_month": _MONTHS[tm.tm_mon - 1], "date_second": str(tm.tm_sec), "date_wday": _DAYS[tm.tm_wday],
            "date_year": str(tm.tm_year), "date_zone": "0", "timestartpos": "312", "timeendpos": "342",
            "eventtype": "ms-sysmon-network", "tag": ["communicate", "network"],
            "EventCode": "3", "EventID": "3", "EventRecordID": str(record_id), "Version": "5", "Level": "4",
            "Task": "3", "Opcode": "0", "Keywords": "0x8000000000000000",
            "Channel": "Microsoft-Windows-Sysmon/Operational", "Computer": host.fqdn, "Guid": _SYSMON_GUID,
            "Name": "Microsoft-Windows-Sysmon", "ProcessID": host.sysmon_pid, "ThreadID": thread,
            "SystemTime": system_time, "UserID": "S-1-5-18",
            "RuleName": rule, "UtcTime": utc, "ProcessGuid": guid, "ProcessId": pid, "Image": image, "User": user,
            "Protocol": protocol, "Initiated": initiated, "SourceIsIpv6": six, "SourceIp": src_ip,
            "SourceHostname": src_name, "SourcePort": src_port, "SourcePortName": src_port_name,
            "DestinationIsIpv6": six, "DestinationIp": dest_ip, "DestinationHostname": dest_name,
            "DestinationPort": dest_port, "DestinationPortName": dest_port_name,
            "action": "allowed", "app": base, "dest": dest_name if dest_name != "-" else dest_ip, "dest_ip": dest_ip,
            "dest_port": dest_port, "src": src_name if src_name != "-" else src_ip, "src_ip": src_ip,
            "src_port": src_port, "user": user, "process_id": pid, "process_guid": guid, "process_name": base,
            "process_path": image, "transport": protocol, "protocol": "ip",
            "direction": "inbound" if inbound else "outbound", "vendor_product": "Microsoft Sysmon",
            "signature": "Network connection detected", "signature_id": "3", "EventDescription": "Network Connect",
        }
        yield kind, event


FULL_FIELDS = tuple(sorted(next(generate_events(1))[1]))


def naive_labels(image, kind):
    """Whether the naive (original SPL) command labels an event of `kind` with `image` (for expected counts)."""
    name = image[image.rfind("\\") + 1:].lower()
    return kind in ("hit", "listed_inbound") and name != "nslookup.exe"


# ------------------------------------------------------------------------------------------------
# Streams: the encoded bytes

@dataclass(frozen=True)
class Stream:
    events: int
    chunk: int
    shape: str = "full"  # "full": every field; "selected": SELECTED_FIELDS only
    images: int = 2000
    dests: int = 20000
    seed: int = SEED

    @property
    def name(self):
        return "%s-%d-per-%d-i%d-d%d-s%d-g%d" % (self.shape, self.events, self.chunk, self.images, self.dests,
                                                   self.seed, GENERATOR_VERSION)

    @property
    def fields(self):
        return FULL_FIELDS if self.shape == "full" else SELECTED_FIELDS

    def as_json(self):
        return {"events": self.events, "chunk": self.chunk, "shape": self.shape, "images": self.images,
                "dests": self.dests, "seed": self.seed}


_PLAIN_CELL = re.compile(r"[A-Za-z0-9]+\Z")


def _cell(value):
    if not value or _PLAIN_CELL.match(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def encode_row(event, fields):
    """One CSV line exactly as scpv2.encode_records writes it (every plain cell, then every __mv_ cell)."""
    plain, multi = [], []
    for name in fields:
        value = event.get(name, "")
        if value.__class__ is list:
            plain.append(_cell("\n".join(value)))
            multi.append(_cell("$" + "$;$".join(v.replace("$", "$$") for v in value) + "$") if len(value) > 1 else "")
        else:
            plain.append(_cell(value))
            multi.append("")
    return ",".join(plain + multi)


def header_line(fields):
    return ",".join(_cell(name) for name in list(fields) + ["__mv_" + name for name in fields])


class _StreamWriter:
    def __init__(self, stream, path):
        self.stream, self.path = stream, path
        self.handle = open(path + ".tmp", "wb")
        self.header = header_line(stream.fields)
        self.rows, self.chunks, self.written = [], 0, 0
        self.kinds = dict.fromkeys(KINDS, 0)
        self.expected_naive, self.raw_bytes = 0, 0
        self.images, self.dests = set(), set()  # distinct values the command's caches see
        getinfo = scpv2.encode_chunk(scpv2.getinfo_metadata([], app_root=ROOT, search=_search("classifyport")))
        self.handle.write(getinfo)
        self.data_offset = len(getinfo)

    def add(self, kind, event, row):
        self.rows.append(row)
        self.kinds[kind] += 1
        self.expected_naive += naive_labels(event["Image"], kind)
        self.raw_bytes += len(event["_raw"].encode("utf-8"))
        self.images.add(event["Image"])
        self.dests.add(event["DestinationIp"])
        self.written += 1
        if len(self.rows) == self.stream.chunk:
            self.flush()

    def flush(self):
        if self.rows:
            body = self.header + "\n" + "\n".join(self.rows) + "\n"
            self.handle.write(scpv2.encode_chunk({"action": "execute", "finished": False}, body))
            self.chunks += 1
            self.rows = []

    def close(self):
        self.flush()
        self.handle.write(scpv2.encode_chunk({"action": "execute", "finished": True}))
        self.handle.close()
        os.replace(self.path + ".tmp", self.path)
        meta = {"stream": self.stream.as_json(), "generator": GENERATOR_VERSION, "events": self.written,
                "chunks": self.chunks, "bytes": os.path.getsize(self.path), "data_offset": self.data_offset,
                "fields": len(self.stream.fields), "mean_raw_bytes": self.raw_bytes / max(1, self.written),
                "kinds": self.kinds, "distinct_images": len(self.images), "distinct_dests": len(self.dests),
                "expected": {"classifyport-filter": self.kinds["hit"], "naive-filter": self.expected_naive}}
        with open(self.path + ".json", "w", encoding="utf-8") as handle:
            json.dump(meta, handle, indent=1)
        return meta


def write_streams(streams, directory):
    """Generate the events once per (seed, pools) and write every stream of that group in one pass."""
    os.makedirs(directory, exist_ok=True)
    groups = {}
    for stream in streams:
        groups.setdefault((stream.seed, stream.images, stream.dests), []).append(stream)
    for (seed, images, dests), members in groups.items():
        writers = [_StreamWriter(stream, stream_path(stream, directory)) for stream in members]
        count = max(stream.events for stream in members)
        started = time.monotonic()
        for number, (kind, event) in enumerate(generate_events(count, seed, images, dests)):
            rows = {}  # each shape's CSV line is encoded once, whatever the number of streams sharing it
            for writer in writers:
                if number < writer.stream.events:
                    shape = writer.stream.shape
                    row = rows.get(shape)
                    if row is None:
                        row = rows[shape] = encode_row(event, writer.stream.fields)
                    writer.add(kind, event, row)
            if number and number % 200000 == 0:
                progress("  generated %s of %s events (%.0f s)" % (_n(number), _n(count), time.monotonic() - started))
        for writer in writers:
            writer.close()


def stream_path(stream, directory):
    return os.path.join(directory, stream.name + ".scp")


def load_stream_meta(stream, directory):
    path = stream_path(stream, directory)
    try:
        with open(path + ".json", encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError):
        return None
    if (meta.get("generator") != GENERATOR_VERSION or meta.get("stream") != stream.as_json()
            or not os.path.exists(path) or os.path.getsize(path) != meta.get("bytes")):
        return None
    meta["path"] = path
    return meta


def ensure_streams(streams, directory, fresh=False):
    """Generate the streams missing from the cache, in a child process (the harness stays small; see run_once)."""
    streams = sorted(set(streams), key=lambda s: s.name)
    missing = [stream for stream in streams if fresh or load_stream_meta(stream, directory) is None]
    if missing:
        longest = max(stream.events for stream in missing)
        progress("generating %d stream(s) (up to %s events; each event is generated once) into %s"
                 % (len(missing), _n(longest), _rel(directory)))
        spec = json.dumps([stream.as_json() for stream in missing])
        subprocess.run([sys.executable, os.path.abspath(__file__), "--generate-streams", spec, directory],
                       check=True)
    metas = {}
    for stream in streams:
        meta = load_stream_meta(stream, directory)
        if meta is None:
            raise BenchError("stream %s was not generated" % stream.name)
        metas[stream] = meta
    return metas


# ------------------------------------------------------------------------------------------------
# Commands and their runs

class BenchError(Exception):
    pass


@dataclass(frozen=True)
class Command:
    key: str  # id used in the report and in expected counts
    label: str  # as the report shows it
    script: str  # "app:bin/classifyport.py" (inside the app under test) or a path
    args: tuple = ()
    splunk_name: str = "classifyport"
    python: str = None  # None: --python
    variant: str = None  # a key of APP_VARIANTS: run from an edited copy of the app
    passthrough: bool = False  # returns every record (checked)


def _search(name, args=()):
    return " ".join(["search index=wineventlog sourcetype=XmlWinEventLog EventCode=3 |", name] + list(args))


COMMANDS = (
    Command("classifyport-filter", "classifyport mode=filter", "app:bin/classifyport.py", ("mode=filter",)),
    Command("classifyport-annotate", "classifyport mode=annotate", "app:bin/classifyport.py", ("mode=annotate",),
            passthrough=True),
    Command("noop", "no-op splunklib command", os.path.join(BENCH_COMMANDS, "noop.py"), (), "benchnoop",
            passthrough=True),
    Command("naive-filter", "naive splunklib command, mode=filter", os.path.join(BENCH_COMMANDS, "naive.py"),
            ("mode=filter",), "benchnaive"),
    Command("naive-annotate", "naive splunklib command, mode=annotate", os.path.join(BENCH_COMMANDS, "naive.py"),
            ("mode=annotate",), "benchnaive", passthrough=True),
    Command("floor", "raw protocol floor (csv, no splunklib)", os.path.join(BENCH_COMMANDS, "floor.py"), (),
            "benchfloor", passthrough=True),
)


def _allowlisted(key):
    command = next(command for command in COMMANDS if command.key == key)
    return replace(command, key=key + "-allow10k", label=command.label + ", 10,000-row allowlist",
                   variant="allowlist10k")


# The same commands from a copy of the app with a 10,000-row allowlist (issue #5: at most 20% slower).
ALLOWLIST_COMMANDS = (_allowlisted("classifyport-filter"), _allowlisted("classifyport-annotate"))


COMMAND = {command.key: command for command in COMMANDS + ALLOWLIST_COMMANDS}


def allowlist_variant(rows):
    """An APP_VARIANTS entry: the app with `rows` allowlist rows, none matching a generated event.

    A third name a process (indexed by name), a third a destination CIDR in 198.18.0.0/15 (the
    benchmarking range, never generated), a third a host glob (LAB-*); the last two kinds are
    checked against every event that would be labelled.
    """
    def prepare(app_dir):
        path = os.path.join(app_dir, "lookups", "classifyport_allowlist.csv")
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write("process,dest_cidr,port,host,user,reason,expires\n")
            for number in range(rows):
                kind = number % 3
                if kind == 0:
                    row = "tool%06d.exe,,443,,,bench row %d," % (number, number)
                elif kind == 1:
                    row = ",198.%d.%d.0/24,,,,bench row %d," % (18 + number // 65536 % 2, number // 256 % 256,
                                                                number)
                else:
                    row = ",,,LAB-%05d*,,bench row %d," % (number, number)
                handle.write(row + "\n")
    return prepare


# name -> function(app_dir) editing a copy of the app under test (e.g. "allowlist10k": allowlist_variant(10000)).
APP_VARIANTS = {
    "allowlist10k": allowlist_variant(10000),
}

# Runs in `python -S`: forks the command from a small process, pins it, waits for it with
# os.wait4 and writes "start end status utime stime maxrss_kb" to the report fd. The command's
# ru_maxrss is then its own: on Linux it would otherwise start at the spawner's high-water mark.
LAUNCHER = r"""
import os, sys, time
fd, cpus, argv = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
os.set_inheritable(fd, False)
start = time.monotonic()
pid = os.fork()
if pid == 0:
    try:
        if cpus != "-":
            os.sched_setaffinity(0, [int(c) for c in cpus.split(",")])
        os.execv(argv[0], argv)
    finally:
        os._exit(127)
os.close(0)
os.close(1)
_, status, usage = os.wait4(pid, 0)
end = time.monotonic()
os.write(fd, ("%r %r %d %r %r %d" % (start, end, os.waitstatus_to_exitcode(status), usage.ru_utime,
                                       usage.ru_stime, usage.ru_maxrss)).encode("ascii"))
"""

_REPLY_HEADER = re.compile(rb"chunked 1\.0,([0-9]+),([0-9]+)\n\Z")


@dataclass
class Run:
    cpu: float
    user: float
    sys: float
    wall: float
    maxrss_kb: int
    getinfo_reply: float  # seconds from fork to the getinfo reply read by the harness
    replies: int
    records_out: int
    bytes_out: int
    messages: list = field(default_factory=list)


class _Feeder(threading.Thread):
    """Writes the command's getinfo chunk, then the stream file's execute chunks, into its stdin pipe."""

    def __init__(self, fd, getinfo, path, offset):
        super().__init__(daemon=True)
        self.fd, self.getinfo, self.path, self.offset = fd, getinfo, path, offset
        self.error = None

    def run(self):
        try:
            view = memoryview(self.getinfo)
            while view:
                view = view[os.write(self.fd, view):]
            with open(self.path, "rb") as source:
                size, offset = os.fstat(source.fileno()).st_size, self.offset
                while offset < size:
                    try:
                        sent = os.sendfile(self.fd, source.fileno(), offset, min(size - offset, 1 << 24))
                    except OSError as error:
                        if error.errno not in (22, 38):  # EINVAL, ENOSYS: no sendfile into a pipe here
                            raise
                        source.seek(offset)
                        data = source.read(1 << 20)
                        view = memoryview(data)
                        while view:
                            view = view[os.write(self.fd, view):]
                        sent = len(data)
                    if sent == 0:
                        break
                    offset += sent
        except BrokenPipeError:
            pass  # the command stopped reading; its exit status and replies say why
        except OSError as error:
            self.error = error
        finally:
            os.close(self.fd)


class RowCounter:
    """Counts the CSV records of a body fed in pieces, in bounded memory.

    A line end (LF; CRLF ends in LF too) ends a record only outside quotes, that is when the
    number of '"' seen since the record began is even (a doubled "" inside a quoted cell keeps
    the parity), so multivalue cells holding newlines count once, whatever the line ends.
    """

    def __init__(self):
        self.lines = 0
        self._odd = False
        self._tail = b""

    def feed(self, piece):
        lines = (self._tail + piece).split(b"\n") if self._tail else piece.split(b"\n")
        self._tail = lines.pop()
        odd, count = self._odd, 0
        for line in lines:
            if line.count(b'"') & 1:
                odd = not odd
            if not odd:
                count += 1
        self._odd = odd
        self.lines += count

    def records(self):
        """Records in the body fed so far: lines after the header (a last line without a line end counts)."""
        lines = self.lines + (1 if self._tail else 0)
        return max(0, lines - 1)


def _read_replies(fd):
    """Count reply chunks, records and bytes of a command's stdout, streaming, in bounded memory.

    Returns (replies, records, bytes, messages, monotonic time the getinfo reply was complete).
    """
    replies = records = total = 0
    messages, first = [], None
    pending = bytearray()
    state, meta_len, body_left, counter = "header", 0, 0, None
    while True:
        data = os.read(fd, 1 << 20)
        if not data:
            break
        total += len(data)
        pending += data
        while True:
            if state == "header":
                end = pending.find(b"\n")
                if end < 0:
                    if len(pending) > 4096:
                        raise BenchError("reply stream is not SCP v2: %r" % bytes(pending[:80]))
                    break
                match = _REPLY_HEADER.match(bytes(pending[:end + 1]))
                if match is None:
                    raise BenchError("bad reply chunk header %r" % bytes(pending[:min(end + 1, 80)]))
                meta_len, body_left = int(match.group(1)), int(match.group(2))
                del pending[:end + 1]
                state = "meta"
            if state == "meta":
                if len(pending) < meta_len:
                    break
                metadata = json.loads(bytes(pending[:meta_len]).decode("utf-8")) if meta_len else {}
                del pending[:meta_len]
                for level, text in ((metadata.get("inspector") or {}).get("messages") or []):
                    messages.append((level, text))
                if first is None:
                    first = time.monotonic()
                state, counter = "body", RowCounter()
            if state == "body":
                take = min(body_left, len(pending))
                if take:
                    counter.feed(bytes(pending[:take]))
                    del pending[:take]
                    body_left -= take
                if body_left:
                    break
                replies += 1
                records += counter.records()
                state = "header"
    if state != "header" or pending:
        raise BenchError("the reply stream ends inside a chunk")
    return replies, records, total, messages, first


def run_once(command, stream_meta, ctx, timeout=7200):
    """Run `command` on one stream the way splunkd does (pipes both ways) and measure it."""
    python = command.python or ctx.python
    script = command.script
    app_dir = ctx.app_dir(command.variant)
    if script.startswith("app:"):
        script = os.path.join(app_dir, script[4:])
    getinfo = scpv2.encode_chunk(scpv2.getinfo_metadata(
        list(command.args), app_root=app_dir, dispatch_dir=ctx.dispatch, command=command.splunk_name,
        search=_search(command.splunk_name, command.args)))
    report_r, report_w = os.pipe()
    in_r, in_w = os.pipe()
    env = dict(os.environ, CLASSIFYPORT_BENCH_BIN=os.path.join(app_dir, "bin"))
    stderr_path = os.path.join(ctx.workdir, "last-stderr.txt")
    with open(stderr_path, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-S", "-E", "-c", LAUNCHER, str(report_w), ctx.command_cpus,
                                 python, script], stdin=in_r, stdout=subprocess.PIPE, stderr=stderr,
                                pass_fds=(report_w,), cwd=ctx.dispatch, env=env, start_new_session=True)
    os.close(in_r)
    os.close(report_w)
    feeder = _Feeder(in_w, getinfo, stream_meta["path"], stream_meta["data_offset"])
    feeder.start()
    timer = threading.Timer(timeout, lambda: _kill_group(proc.pid))
    timer.start()
    try:
        replies, records, size, messages, first = _read_replies(proc.stdout.fileno())
    except BaseException:  # a bad reply stream, Ctrl-C or SIGTERM: never leave the command running
        _kill_group(proc.pid)
        raise
    finally:
        proc.stdout.close()
        proc.wait()
        timer.cancel()
        feeder.join()
        with os.fdopen(report_r, "rb") as report:
            fields = report.read().decode("ascii").split()
    if len(fields) != 6:
        raise BenchError("%s: the launcher reported nothing (exit %s)" % (command.label, proc.returncode))
    start, end, status = float(fields[0]), float(fields[1]), int(fields[2])
    user, system, maxrss = float(fields[3]), float(fields[4]), int(fields[5])
    run = Run(cpu=user + system, user=user, sys=system, wall=end - start, maxrss_kb=maxrss,
              getinfo_reply=(first - start) if first else float("nan"), replies=replies, records_out=records,
              bytes_out=size, messages=messages)
    problems = []
    if status != 0:
        problems.append("exit status %d" % status)
    errors = [text for level, text in messages if level in ("ERROR", "FATAL")]
    if errors:
        problems.append("ERROR: %s" % "; ".join(errors))
    expected_replies = 1 + stream_meta["chunks"] + 1
    if replies != expected_replies:
        problems.append("%d reply chunks for %d requests" % (replies, expected_replies))
    if command.passthrough and records != stream_meta["events"]:
        problems.append("returned %d of %d records" % (records, stream_meta["events"]))
    if feeder.error is not None:
        problems.append("could not feed stdin: %s" % feeder.error)
    if problems:
        with open(stderr_path, "rb") as handle:
            tail = handle.read()[-3000:].decode("utf-8", "replace")
        raise BenchError("%s on %s: %s\n%s" % (command.label, os.path.basename(stream_meta["path"]),
                                              ", ".join(problems), tail))
    return run


def _kill_group(pid):
    try:
        os.killpg(pid, 9)
    except OSError:
        pass


# ------------------------------------------------------------------------------------------------
# Scenarios and suites

@dataclass(frozen=True)
class Scenario:
    suite: str
    command: Command
    stream: Stream
    repeat: int = 3


@dataclass
class Result:
    scenario: Scenario
    meta: dict
    runs: list

    def median(self, attribute):
        return statistics.median(getattr(run, attribute) for run in self.runs)

    @property
    def cpu(self):
        return self.median("cpu")

    @property
    def throughput(self):
        """Records in per CPU-second of the command (median run)."""
        return self.meta["events"] / self.cpu if self.cpu > 0 else float("nan")

    @property
    def spread(self):
        """(max - min) / median of the runs' CPU time."""
        values = [run.cpu for run in self.runs]
        return (max(values) - min(values)) / self.cpu if len(values) > 1 and self.cpu > 0 else 0.0

    @property
    def rss_mb(self):
        return max(run.maxrss_kb for run in self.runs) / 1024.0

    @property
    def records_out(self):
        return self.runs[0].records_out


def main_suite(options):
    out = []
    for shape in ("full", "selected"):
        stream = Stream(options.events, options.chunk, shape)
        out += [Scenario("main", command, stream, options.repeat) for command in COMMANDS]
    return out


def chunks_suite(options):
    out = []
    for chunk in options.chunk_sizes:
        stream = Stream(options.chunk_events, chunk, "full")
        out += [Scenario("chunks", command, stream, options.aux_repeat) for command in COMMANDS]
    return out


SCALING_COMMANDS = ("classifyport-filter", "classifyport-annotate", "noop")


def scaling_suite(options):
    out = []
    for events in options.scaling:
        stream = Stream(events, options.chunk, "full")
        out += [Scenario("scaling", COMMAND[key], stream, options.aux_repeat) for key in SCALING_COMMANDS]
    return out


EMPTY = Stream(0, 1, "full")  # getinfo and the final chunk only: start-up and warm-up


def interpreter_commands(options):
    """classifyport mode=filter under Splunk's other interpreters (3.9 and 3.13), when pyenv has them."""
    out = []
    for version in SPLUNK_PYTHONS:
        path = pyenv_python(version)
        if path is None:
            progress("bench: no python%s under pyenv; its start-up row is left out" % version)
            continue
        out.append(replace(COMMAND["classifyport-filter"], key="classifyport-filter-py" + version,
                           label="classifyport mode=filter, Python " + version, python=path))
    return out


def startup_suite(options):
    # Start-up matters per search and peer: 11 runs (at least) for each interpreter's median.
    repeat = max(options.startup_repeat, 11) if not options.quick else options.startup_repeat
    return ([Scenario("startup", command, EMPTY, options.startup_repeat) for command in COMMANDS]
            + [Scenario("startup", COMMAND["classifyport-filter"], EMPTY, repeat)]
            + [Scenario("startup", command, EMPTY, repeat) for command in interpreter_commands(options)])


def allowlist_suite(options):
    """classifyport with and without a 10,000-row allowlist on the main streams, at least 3 runs each
    (medians: a 20% margin is within one run's noise on a shared machine)."""
    out = []
    repeat = options.repeat if options.quick else max(options.repeat, 3)
    for shape in ("full", "selected"):
        stream = Stream(options.events, options.chunk, shape)
        for command in ALLOWLIST_COMMANDS:
            plain = COMMAND[command.key[:-len("-allow10k")]]
            out += [Scenario("allowlist", plain, stream, repeat), Scenario("allowlist", command, stream, repeat)]
    return out


def longrun_streams(options):
    """The long-run pair: --longrun-events and 1/100 as many events, selected fields (a full 10M stream is
    ~28 GB), from pools of 100,000 images and 1,200,000 destinations: at 10M events, 100,000 distinct
    images and over 1,000,000 distinct destinations (a fifth of the events are inbound, to the host's
    own address, and the pool is skewed, so a 1,000,000 pool gives ~908,000)."""
    images, dests = (1000, 10000) if options.quick else (100000, 1200000)
    small = max(1, options.longrun_events // 100)
    return [Stream(events, options.chunk, "selected", images=images, dests=dests)
            for events in (small, options.longrun_events)]


def longrun_suite(options):
    return [Scenario("longrun", COMMAND[key], stream, options.aux_repeat)
            for stream in longrun_streams(options) for key in ("classifyport-filter", "classifyport-annotate")]


SUITES = {"startup": startup_suite, "main": main_suite, "chunks": chunks_suite, "scaling": scaling_suite,
          "allowlist": allowlist_suite, "longrun": longrun_suite}
DEFAULT_SUITES = ("startup", "main", "chunks", "scaling", "allowlist", "longrun")


APP_PARTS = ("app.manifest", "bin", "default", "lookups", "metadata", "README")


class Context:
    def __init__(self, options, app_root):
        self.workdir = options.workdir
        self.python = options.python
        self.app_root = app_root
        self.dispatch = os.path.join(options.workdir, "dispatch")
        os.makedirs(self.dispatch, exist_ok=True)
        self.command_cpus = options.command_cpus
        self._variants = {}

    def app_dir(self, variant=None):
        if variant is None:
            return self.app_root
        if variant not in self._variants:
            target = os.path.join(self.workdir, "variants", variant, os.path.basename(self.app_root))
            shutil.rmtree(os.path.dirname(target), ignore_errors=True)
            os.makedirs(target)
            for name in APP_PARTS:  # what the command needs (the source tree has much more: build/, .git, ...)
                source = os.path.join(self.app_root, name)
                if os.path.isdir(source):
                    shutil.copytree(source, os.path.join(target, name),
                                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                elif os.path.isfile(source):
                    shutil.copy2(source, target)
            APP_VARIANTS[variant](target)
            self._variants[variant] = target
        return self._variants[variant]


def run_scenarios(scenarios, metas, ctx):
    """Run every scenario `repeat` times, round-robin (run 1 of each, then run 2, ...), so slow
    drifts of the machine spread over all commands alike. Scenarios of several suites that run the
    same command on the same stream run once, as often as the most demanding asks."""
    merged = {}
    for scenario in scenarios:
        key = (scenario.command, scenario.stream)
        if key not in merged or merged[key].repeat < scenario.repeat:
            merged[key] = scenario
    unique = list(merged.values())
    results = {scenario: Result(scenario, metas[scenario.stream], []) for scenario in unique}
    # Warm-up: one unmeasured start per command (compiles the .pyc files of the app under test).
    for command in dict.fromkeys(scenario.command for scenario in unique):
        run_once(command, metas[EMPTY], ctx)
    rounds = max(scenario.repeat for scenario in unique)
    total = sum(scenario.repeat for scenario in unique)
    done, started = 0, time.monotonic()
    for round_number in range(rounds):
        for scenario in unique:
            if round_number >= scenario.repeat:
                continue
            run = run_once(scenario.command, metas[scenario.stream], ctx)
            results[scenario].runs.append(run)
            done += 1
            if scenario.stream.events:
                progress("  [%d/%d] %-40s %-9s %9s ev/%-6s  %6.1f s CPU  %7s rec/CPU-s  %6.0f MB  (%.0f s elapsed)"
                         % (done, total, scenario.command.label[:40], scenario.stream.shape, _n(scenario.stream.events),
                            _short(scenario.stream.chunk), run.cpu, _n(scenario.stream.events / run.cpu),
                            run.maxrss_kb / 1024.0, time.monotonic() - started))
    return results


# ------------------------------------------------------------------------------------------------
# The report

def _n(number):
    return "{:,}".format(int(round(number)))


def _short(number):
    if number >= 1000000 and number % 1000000 == 0:
        return "%dM" % (number // 1000000)
    if number >= 1000 and number % 1000 == 0:
        return "%dk" % (number // 1000)
    return str(number)


def _runs(count):
    return "**median of %d runs**" % count if count > 1 else "one run"


def _ratio(a, b):
    return a / b if b else float("nan")


def _x(value):
    return "%.2fx" % value


def _rel(path):
    try:
        relative = os.path.relpath(path, ROOT)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def progress(message):
    print(message, file=sys.stderr, flush=True)


def machine_info(options, app_root, package):
    info = {}
    model = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["cpu"] = model or platform.processor() or platform.machine()
    info["cores"] = os.cpu_count()
    try:
        info["ram"] = "%.1f GiB" % (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2 ** 30)
    except (ValueError, OSError):
        info["ram"] = "unknown"
    info["os"] = "%s %s" % (platform.system(), platform.release())
    probe = subprocess.run([options.python, "-c", "import sys, platform; print(platform.python_implementation(), "
                                                  "sys.version.split()[0])"],
                           capture_output=True, text=True)
    info["python"] = probe.stdout.strip() or "unknown"
    info["python_path"] = options.python
    sdk = "unknown"
    try:
        with open(os.path.join(app_root, "bin", "splunklib", "__init__.py"), encoding="utf-8") as handle:
            found = re.search(r"__version_info__\s*=\s*\(([^)]*)\)", handle.read())
        if found:
            sdk = ".".join(part.strip() for part in found.group(1).split(",") if part.strip())
    except OSError:
        pass
    info["sdk"] = sdk
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    info["commit"] = (commit.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    if package:
        with open(package, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        info["under_test"] = "%s (sha256 %s…), extracted into %s" % (_rel(package), digest[:16], _rel(app_root))
    else:
        info["under_test"] = "the source tree %s (no --package)" % _rel(app_root)
    return info


def _rss_cell(result):
    return "%.0f" % result.rss_mb if result else "–"


def write_report(path, options, info, results, metas, elapsed, argv):
    by_key = {}
    for scenario, result in results.items():
        by_key[(scenario.command.key, scenario.stream)] = result

    def get(key, stream):
        return by_key.get((key, stream))

    lines = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add("Written by `tools/bench.py` (`make bench`); do not edit by hand. A benchmark, not a test: "
        "`make test` only checks that the harness is correct.")
    if options.quick:
        add("")
        add("**Quick run (`--quick`)**: %s events, one run per scenario. The numbers check the harness; "
            "they are not representative." % _n(options.events))
    add("")
    add("## Machine and run")
    add("")
    add("| | |")
    add("|---|---|")
    add("| CPU | %s |" % info["cpu"])
    add("| cores | %s (the command is pinned to CPU %s; the harness uses the others) |"
        % (info["cores"], options.command_cpus) if options.command_cpus != "-" else "| cores | %s |" % info["cores"])
    add("| RAM | %s |" % info["ram"])
    add("| OS | %s |" % info["os"])
    add("| Python (runs every command) | %s (`%s`) |" % (info["python"], _rel(info["python_path"])))
    add("| splunk-sdk (vendored) | %s |" % info["sdk"])
    add("| app under test | %s |" % info["under_test"])
    add("| git commit (repository, at the start) | %s |" % info["commit"])
    add("| date | %s |" % datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    shown = list(argv)
    for index, arg in enumerate(shown[:-1]):
        if arg == "--note":
            shown[index + 1] = "(the note below)"
    add("| command line | `%s` |" % shlex.join(["python", "tools/bench.py"] + shown).replace("|", "\\|"))
    add("| total bench time | %.0f s (%.1f min), stream generation included |" % (elapsed, elapsed / 60.0))
    if getattr(options, "note", None):
        add("| note | %s |" % options.note.replace("|", "/"))
    add("")
    add("## How it is measured")
    add("")
    add("- Events: Sysmon Event ID 3 as Splunk extracts them from `XmlWinEventLog` (%d fields: the Sysmon EventData "
        "and System fields, `_time`, `_raw`, `_serial`, `_cd`, `_bkt`, `_si`, `host`, `source`, `sourcetype`, "
        "`index`, `date_*`, `eventtype`, `tag`, `EventCode`, the CIM aliases), generated with seed %d; ~5%% are a "
        "listed process on a listed port outbound (what `classifyport` labels), 1%% the same inbound, 1.5%% a listed "
        "process on another port; ~20%% of all connections inbound, ~10%% IPv6, destinations internal and external, "
        "%s distinct benign images and %s destinations in the pools."
        % (len(FULL_FIELDS), SEED, _n(Stream(0, 1).images), _n(Stream(0, 1).dests)))
    add("- Each stream is encoded once, as splunkd sends it (`tools/scpv2.py` framing: getinfo, execute chunks of N "
        "records, an empty final `finished` chunk), into `build/bench/streams/`. Every command reads the same execute "
        "bytes from that file through a pipe, after its own getinfo chunk (only the args differ), and writes its "
        "replies into a pipe the harness reads, checking one reply per request, no ERROR, and every record returned "
        "by the commands that return all.")
    add("- CPU = user + sys of the command's process (os.wait4), interpreter start-up included; throughput = records "
        "in / CPU-second; peak RSS = its ru_maxrss; wall = fork to exit (wall depends on what else the machine runs; "
        "CPU much less). Throughput tables: %s (runs interleaved across commands); peak-RSS-by-chunk and scaling "
        "tables: %s; start-up: %s. Peak RSS is the largest of the runs; \"spread\" is (max - min) / median of the "
        "CPU times."
        % (_runs(options.repeat), _runs(options.aux_repeat) + (" (the %s-event point is the main run)"
                                                             % _n(options.events) if "main" in options.suites else ""),
           _runs(options.startup_repeat)))
    add("- Selected fields: only %s, what a search restricting its fields sends." %
        ", ".join("`%s`" % name for name in SELECTED_FIELDS))
    add("")

    main_full = Stream(options.events, options.chunk, "full")
    main_sel = Stream(options.events, options.chunk, "selected")

    def ratio_of(key_a, key_b, stream):
        a, b = get(key_a, stream), get(key_b, stream)
        return _ratio(a.throughput, b.throughput) if a and b else None

    # Goals
    if "main" in options.suites:
        add("## Goals (issue #4)")
        add("")
        add("| goal | measured | status |")
        add("|---|---|---|")
        for mode in ("filter", "annotate"):
            for stream, what in ((main_full, "full events"), (main_sel, "selected fields")):
                value = ratio_of("classifyport-" + mode, "noop", stream)
                if value is not None:
                    add("| classifyport mode=%s >= 1.5x the no-op splunklib command (%s) | %s (%s vs %s records/CPU-s) | %s |"
                        % (mode, what, _x(value), _n(get("classifyport-" + mode, stream).throughput),
                           _n(get("noop", stream).throughput), "met" if value >= 1.5 else "**not met**"))
        for mode in ("filter", "annotate"):
            for stream, what in ((main_full, "full events"), (main_sel, "selected fields")):
                value = ratio_of("classifyport-" + mode, "naive-" + mode, stream)
                if value is not None:
                    add("| classifyport mode=%s >= 3x the naive command, mode=%s (%s) | %s (%s vs %s records/CPU-s) | %s |"
                        % (mode, mode, what, _x(value), _n(get("classifyport-" + mode, stream).throughput),
                           _n(get("naive-" + mode, stream).throughput), "met" if value >= 3 else "**not met**"))
        if "scaling" in options.suites:
            low, high = min(options.scaling), max(options.scaling)
            for mode in ("filter", "annotate"):
                a = get("classifyport-" + mode, Stream(low, options.chunk, "full"))
                b = get("classifyport-" + mode, Stream(high, options.chunk, "full"))
                if a and b:
                    change = b.rss_mb / a.rss_mb - 1
                    add("| peak RSS independent of the number of events: mode=%s, %s vs %s events within 10%% | "
                        "%.0f MB vs %.0f MB (%+.1f%%) | %s |"
                        % (mode, _n(high), _n(low), b.rss_mb, a.rss_mb, 100 * change,
                           "met" if change <= 0.10 else "**not met**"))
        add("")

    # Goals of issue #5: allowlist cost, memory over a long run
    goals5 = []
    if "allowlist" in options.suites:
        for command in ALLOWLIST_COMMANDS:
            plain_key = command.key[:-len("-allow10k")]
            for stream, what in ((main_full, "full events"), (main_sel, "selected fields")):
                value = ratio_of(command.key, plain_key, stream)
                if value is not None:
                    goals5.append("| %s with a 10,000-row allowlist keeps >= 80%% of its throughput (%s) | %s "
                                  "(%s vs %s records/CPU-s) | %s |"
                                  % (COMMAND[plain_key].label, what, "%.0f%%" % (100 * value),
                                     _n(get(command.key, stream).throughput), _n(get(plain_key, stream).throughput),
                                     "met" if value >= 0.8 else "**not met**"))
    if "longrun" in options.suites:
        small, large = longrun_streams(options)
        for key in ("classifyport-filter", "classifyport-annotate"):
            a, b = get(key, small), get(key, large)
            if a and b:
                change = b.rss_mb / a.rss_mb - 1
                goals5.append("| %s: peak RSS at %s events (%s distinct images, %s distinct destinations) within 10%% "
                              "of the %s-event figure | %.0f MB vs %.0f MB (%+.1f%%) | %s |"
                              % (COMMAND[key].label, _n(large.events), _n(b.meta.get("distinct_images", 0)),
                                 _n(b.meta.get("distinct_dests", 0)), _n(small.events), b.rss_mb, a.rss_mb,
                                 100 * change, "met" if change <= 0.10 else "**not met**"))
    if goals5:
        add("## Goals (issue #5)")
        add("")
        add("| goal | measured | status |")
        add("|---|---|---|")
        lines.extend(goals5)
        add("")

    # Main tables
    if "main" in options.suites:
        add("## Throughput: %s events, %s per chunk" % (_n(options.events), _n(options.chunk)))
        add("")
        for stream, title in ((main_full, "Full events"), (main_sel, "Selected fields")):
            meta = metas.get(stream)
            if meta is None:
                continue
            add("### %s (%d fields; stream %.1f MB%s)" % (
                title, meta["fields"], meta["bytes"] / 1e6,
                ", mean `_raw` %d bytes" % meta["mean_raw_bytes"] if stream.shape == "full" else ""))
            add("")
            add("| command | records out | CPU s | spread | records / CPU-s | wall s | peak RSS MB | vs no-op | vs naive | vs floor |")
            add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            for command in COMMANDS:
                result = get(command.key, stream)
                if result is None:
                    continue
                naive_key = "naive-annotate" if command.key.endswith("annotate") else "naive-filter"
                cells = [command.label, _n(result.records_out), "%.2f" % result.cpu,
                         "%.0f%%" % (100 * result.spread) if len(result.runs) > 1 else "–",
                         _n(result.throughput), "%.2f" % result.median("wall"), "%.0f" % result.rss_mb]
                for other in ("noop", naive_key, "floor"):
                    value = ratio_of(command.key, other, stream)
                    cells.append(_x(value) if value is not None else "–")
                add("| " + " | ".join(cells) + " |")
            add("")
        add("### Ratios (throughput, records per CPU-second)")
        add("")
        add("| ratio | full events | selected fields |")
        add("|---|---:|---:|")
        for a, b, label in (("classifyport-filter", "noop", "classifyport filter / no-op splunklib"),
                            ("classifyport-filter", "naive-filter", "classifyport filter / naive filter"),
                            ("classifyport-annotate", "noop", "classifyport annotate / no-op splunklib"),
                            ("classifyport-annotate", "naive-annotate", "classifyport annotate / naive annotate"),
                            ("classifyport-filter", "floor", "classifyport filter / raw protocol floor"),
                            ("classifyport-annotate", "floor", "classifyport annotate / raw protocol floor"),
                            ("noop", "floor", "no-op splunklib / raw protocol floor")):
            cells = []
            for stream in (main_full, main_sel):
                value = ratio_of(a, b, stream)
                cells.append(_x(value) if value is not None else "–")
            add("| %s | %s |" % (label, " | ".join(cells)))
        add("")

    if "chunks" in options.suites:
        add("## Peak RSS by records per chunk (full events, %s events)" % _n(options.chunk_events))
        add("")
        add("| command | " + " | ".join("%s per chunk: MB | records / CPU-s" % _n(c) for c in options.chunk_sizes) + " |")
        add("|---|" + "---:|---:|" * len(options.chunk_sizes))
        for command in COMMANDS:
            cells = []
            for chunk in options.chunk_sizes:
                result = get(command.key, Stream(options.chunk_events, chunk, "full"))
                cells += [_rss_cell(result), _n(result.throughput) if result else "–"]
            add("| %s | %s |" % (command.label, " | ".join(cells)))
        add("")

    if "scaling" in options.suites:
        add("## Scaling with the number of events (full events, %s per chunk)" % _n(options.chunk))
        add("")
        add("| command | " + " | ".join("%s events: records / CPU-s | MB" % _n(e) for e in options.scaling)
            + " | RSS change |")
        add("|---|" + "---:|---:|" * len(options.scaling) + "---:|")
        for key in SCALING_COMMANDS:
            cells, rss = [], []
            for events in options.scaling:
                result = get(key, Stream(events, options.chunk, "full"))
                cells += [_n(result.throughput) if result else "–", _rss_cell(result)]
                if result:
                    rss.append(result.rss_mb)
            change = "%+.1f%%" % (100 * (rss[-1] / rss[0] - 1)) if len(rss) > 1 else "–"
            add("| %s | %s | %s |" % (COMMAND[key].label, " | ".join(cells), change))
        add("")

    if "allowlist" in options.suites:
        add("## A 10,000-row allowlist (%s events, %s per chunk)" % (_n(options.events), _n(options.chunk)))
        add("")
        add("The allowlist's rows never match a generated event: a third name a process (looked up by name), a "
            "third a destination CIDR in 198.18.0.0/15, a third a host glob, so every event that would be "
            "labelled is checked against the CIDR and host rules. Same streams and run as the tables above.")
        add("")
        add("| command | stream | records out | CPU s | records / CPU-s | peak RSS MB | vs no allowlist |")
        add("|---|---|---:|---:|---:|---:|---:|")
        for command in ALLOWLIST_COMMANDS:
            plain_key = command.key[:-len("-allow10k")]
            for stream, what in ((main_full, "full events"), (main_sel, "selected fields")):
                for key in (plain_key, command.key):
                    result = get(key, stream)
                    if result:
                        value = ratio_of(key, plain_key, stream)
                        add("| %s | %s | %s | %.2f | %s | %.0f | %s |" % (
                            COMMAND[key].label, what, _n(result.records_out), result.cpu, _n(result.throughput),
                            result.rss_mb, "%.0f%%" % (100 * value) if value is not None else "–"))
        add("")

    if "longrun" in options.suites:
        small, large = longrun_streams(options)
        add("## Long run and memory (selected fields, %s per chunk)" % _n(options.chunk))
        add("")
        add("One process per run. The events draw from pools of %s images and %s destinations (skewed, so a few "
            "are frequent); every distinct value passes through the command's per-image, per-port and "
            "per-destination caches, which are bounded (`portclassify/bounded.py`: cleared "
            "when full), and every chunk body is read in 64 KiB pieces." % (_n(small.images), _n(small.dests)))
        add("")
        add("| command | events | distinct images | distinct destinations | records out | CPU s | records / CPU-s "
            "| peak RSS MB |")
        add("|---|---:|---:|---:|---:|---:|---:|---:|")
        for key in ("classifyport-filter", "classifyport-annotate"):
            for stream in (small, large):
                result = get(key, stream)
                if result:
                    add("| %s | %s | %s | %s | %s | %.2f | %s | %.0f |" % (
                        COMMAND[key].label, _n(stream.events), _n(result.meta.get("distinct_images", 0)),
                        _n(result.meta.get("distinct_dests", 0)), _n(result.records_out), result.cpu,
                        _n(result.throughput), result.rss_mb))
        add("")

    if "startup" in options.suites:
        add("## Start-up (0 events: getinfo, then the final chunk)")
        add("")
        add("Cold start as splunkd sees it, per search and per peer: fork, interpreter start, imports, the getinfo "
            "reply (options and the field-profile lookup checked; the other lookups load with the first data "
            "chunk). The app writes no bytecode (no file in the app directory), so every start compiles its modules.")
        add("")
        add("| command | Python | runs | getinfo reply ms (median) | CPU ms | wall ms | peak RSS MB |")
        add("|---|---|---:|---:|---:|---:|---:|")
        startup_keys = [command.key for command in COMMANDS] + sorted(
            (key for key, _ in by_key if key.startswith("classifyport-filter-py")), key=lambda key: len(key))
        for key in startup_keys:
            result = get(key, EMPTY)
            if result:
                command = result.scenario.command
                python = key[len("classifyport-filter-py"):] if command.python else info["python"]
                add("| %s | %s | %d | %.0f | %.0f | %.0f | %.0f |" % (
                    command.label.split(", Python")[0], python, len(result.runs),
                    1000 * result.median("getinfo_reply"), 1000 * result.cpu, 1000 * result.median("wall"),
                    result.rss_mb))
        add("")

    # Checks: labelled counts against the generator's design
    notes = []
    for (key, stream), result in sorted(by_key.items(), key=lambda item: (item[0][1].name, item[0][0])):
        # An allowlist that matches nothing must not change what is labelled.
        expected = result.meta.get("expected", {}).get(key[:-len("-allow10k")] if key.endswith("-allow10k") else key)
        if expected is not None and stream.events and result.records_out != expected:
            notes.append("%s on %s: %s records out, the generator designed %s"
                         % (COMMAND[key].label, stream.name, _n(result.records_out), _n(expected)))
    add("## Streams and checks")
    add("")
    add("| stream | events | per chunk | fields | MB | hit | listed inbound | listed, other port | benign out | benign in |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for stream, meta in sorted(metas.items(), key=lambda item: item[0].name):
        if not stream.events:
            continue
        kinds = meta["kinds"]
        add("| `%s` | %s | %s | %d | %.1f | %s |" % (
            stream.name, _n(meta["events"]), _n(stream.chunk), meta["fields"], meta["bytes"] / 1e6,
            " | ".join(_n(kinds[kind]) for kind in KINDS)))
    add("")
    add("Every run answered each request with one reply and no ERROR; the commands that return every record did. ")
    if notes:
        add("Labelled counts that differ from the generator's design (a lookup change, or a bug):")
        add("")
        for note in notes:
            add("- " + note)
    else:
        add("`classifyport mode=filter` returned exactly the generated `hit` events and the naive command exactly "
            "the events the original search labels.")
    add("")
    text = "\n".join(lines)
    if path:
        kept = None
        if os.path.exists(path):  # `make fuzz`'s section (tools/fuzz_report.py) stays
            with open(path, encoding="utf-8") as handle:
                kept = fuzz_report.kept_section(handle.read())
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text if kept is None else fuzz_report.replace_section(text, kept))
    return text, notes


def save_results(path, results, info, argv):
    """Every run's raw figures as JSON (build/bench/results.json), for comparing runs later."""
    data = {"argv": argv, "machine": info, "generator": GENERATOR_VERSION, "scenarios": [
        {"command": scenario.command.key, "args": list(scenario.command.args), "stream": scenario.stream.as_json(),
         "events": result.meta["events"], "runs": [asdict(run) for run in result.runs]}
        for scenario, result in results.items()]}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, default=str)


# ------------------------------------------------------------------------------------------------
# Main

def extract_package(package, workdir):
    target = os.path.join(workdir, "app")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    with tarfile.open(package, "r:gz") as archive:
        members = archive.getmembers()
        tops = {member.name.split("/", 1)[0] for member in members}
        for member in members:
            if member.name.startswith("/") or ".." in member.name.split("/") or not (member.isfile() or member.isdir()):
                raise BenchError("%s: unsafe or unexpected entry %r" % (package, member.name))
        if len(tops) != 1:
            raise BenchError("%s: expected one top folder, found %s" % (package, sorted(tops)))
        if sys.version_info >= (3, 12):
            archive.extractall(target, filter="data")
        else:
            archive.extractall(target)
    app = os.path.join(target, tops.pop())
    if not os.path.exists(os.path.join(app, "bin", "classifyport.py")):
        raise BenchError("%s has no bin/classifyport.py" % package)
    return app


def _int_list(text):
    try:
        values = [int(part.replace("_", "").replace(",", "")) for part in text.split("/")]
    except ValueError:
        raise argparse.ArgumentTypeError("expected numbers separated by /, e.g. 100000/300000/1000000")
    if any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError("numbers must be positive")
    return values


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", help="the app package to measure (default: the source tree)")
    parser.add_argument("--write", metavar="PATH", help="write the report here (default: print it)")
    parser.add_argument("--quick", action="store_true",
                        help="a short check of the harness: %s events, one run each" % _n(QUICK_EVENTS))
    parser.add_argument("--events", type=int, help="events in the main streams (default 1,000,000)")
    parser.add_argument("--chunk", type=int, help="records per execute chunk (default 50,000)")
    parser.add_argument("--chunk-sizes", type=_int_list, help="records per chunk for the peak-RSS table (default 10000/50000)")
    parser.add_argument("--scaling", type=_int_list, help="event counts for the scaling table (default 100000/300000/1000000)")
    parser.add_argument("--chunk-events", type=int, help="events in the peak-RSS-by-chunk streams (default 100,000)")
    parser.add_argument("--repeat", type=int, help="runs per main scenario, median reported (default 3)")
    parser.add_argument("--aux-repeat", type=int, help="runs per chunks and scaling scenario (default 1)")
    parser.add_argument("--startup-repeat", type=int, help="runs per start-up scenario (default 5)")
    parser.add_argument("--longrun-events", type=int, help="events in the long-run stream (default 10,000,000)")
    parser.add_argument("--suites", help="comma-separated suites to run (default %s)" % ",".join(DEFAULT_SUITES))
    parser.add_argument("--python", default=sys.executable, help="interpreter that runs the commands (default: this one)")
    parser.add_argument("--workdir", default=WORKDIR, help="streams, extracted app, dispatch dir (default build/bench)")
    parser.add_argument("--fresh", action="store_true", help="regenerate the streams even if cached")
    parser.add_argument("--note", help="a line for the report's run table, e.g. what the package was built from")
    parser.add_argument("--command-cpus", help="CPUs the command is pinned to, e.g. 1 ('-': no pinning; default: the "
                                               "last CPU when there are two or more)")
    options = parser.parse_args(argv)
    quick = options.quick
    if quick:
        defaults = dict(events=QUICK_EVENTS, chunk=2000, chunk_sizes=[500, 2000], chunk_events=2000,
                        scaling=[2000, 5000, QUICK_EVENTS], repeat=1, aux_repeat=1, startup_repeat=1,
                        longrun_events=20000)
    else:
        defaults = dict(events=1000000, chunk=50000, chunk_sizes=[10000, 50000], chunk_events=100000,
                        scaling=[100000, 300000, 1000000], repeat=3, aux_repeat=1, startup_repeat=5,
                        longrun_events=10000000)
    for name, value in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    for name in ("events", "chunk", "chunk_events", "repeat", "aux_repeat", "startup_repeat", "longrun_events"):
        if getattr(options, name) <= 0:
            parser.error("--%s must be positive" % name.replace("_", "-"))
    options.suites = tuple(part.strip() for part in options.suites.split(",")) if options.suites else DEFAULT_SUITES
    unknown = [suite for suite in options.suites if suite not in SUITES]
    if unknown:
        parser.error("unknown suite(s) %s; known: %s" % (", ".join(unknown), ", ".join(SUITES)))
    if options.command_cpus is None:
        cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        options.command_cpus = str(cpus[-1]) if len(cpus) >= 2 else "-"
    options.workdir = os.path.abspath(options.workdir)
    return options


def _terminate(signum, frame):
    raise SystemExit("bench: terminated")  # unwinds through run_once, which stops the running command


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--generate-streams"]:  # internal: the stream generator child (see ensure_streams)
        write_streams([Stream(**spec) for spec in json.loads(argv[1])], argv[2])
        return 0
    options = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    try:
        os.makedirs(options.workdir, exist_ok=True)
        if options.command_cpus != "-" and hasattr(os, "sched_setaffinity"):
            mine = set(os.sched_getaffinity(0)) - {int(cpu) for cpu in options.command_cpus.split(",")}
            if mine:
                os.sched_setaffinity(0, mine)
        if options.package:
            if not os.path.isfile(options.package):
                raise BenchError("no package at %s (run `make package`)" % options.package)
            app_root = extract_package(options.package, options.workdir)
        else:
            app_root = ROOT
            if not os.path.exists(os.path.join(ROOT, "bin", "splunklib", "__init__.py")):
                raise BenchError("bin/splunklib is missing: run `make vendor`")
        scenarios = []
        for suite in options.suites:
            scenarios += SUITES[suite](options)
        streams = {scenario.stream for scenario in scenarios} | {EMPTY}
        metas = ensure_streams(streams, os.path.join(options.workdir, "streams"), options.fresh)
        ctx = Context(options, app_root)
        progress("running %d scenario(s) under %s%s" % (
            len(set(scenarios)), options.python, "" if options.command_cpus == "-" else
            ", command pinned to CPU " + options.command_cpus))
        info = machine_info(options, app_root, options.package)  # before the runs: the commit measured
        results = run_scenarios(scenarios, metas, ctx)
        elapsed = time.monotonic() - started
        save_results(os.path.join(options.workdir, "results.json"), results, info, argv)
        used = {scenario.stream: metas[scenario.stream] for scenario in results}
        text, notes = write_report(options.write, options, info, results, used, elapsed, argv)
    except BenchError as error:
        print("bench: %s" % error, file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print("bench: %s" % error, file=sys.stderr)
        return 1
    if options.write:
        progress("wrote %s (%.0f s)" % (_rel(options.write), elapsed))
    else:
        print(text)
    for note in notes:
        progress("bench: note: %s" % note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
