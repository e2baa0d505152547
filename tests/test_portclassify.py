"""The pure logic in bin/portclassify, without splunklib or the protocol."""
import datetime
import ipaddress
import os
import shutil

import pytest
from hypothesis import given, settings, strategies as st

from conftest import ROOT
from portclassify import bounded, classifier, lookups
from portclassify.allowlist import Allowlist, AllowRule
from portclassify.csvfile import LookupProblem
from portclassify.networks import NetworkSet, ip_number, parse_ip
from portclassify.ports import PortSet, parse_port, parse_port_spec


@pytest.mark.parametrize("text, port", [
    ("443", 443), ("0080", 80), (" 53 ", 53), ("0", 0), ("65535", 65535),
    ("65536", None), ("-1", None), ("+80", None), ("80.0", None), ("", None), ("-", None),
    ("http", None), ("٤٤٣", None), ("1e3", None),
])
def test_parse_port(text, port):
    assert parse_port(text) == port


def test_port_spec_ranges_and_membership():
    ports = PortSet(parse_port_spec("443, 80,8000-8100"))
    assert [p for p in (79, 80, 443, 7999, 8000, 8050, 8100, 8101) if p in ports] == [80, 443, 8000, 8050, 8100]
    assert None not in ports
    assert ports.describe() == "80,443,8000-8100"


@pytest.mark.parametrize("spec", ["abc", "80,eighty", "100-90", "70000", ",", "", "8000-", "1-2-3"])
def test_port_spec_rejects(spec):
    with pytest.raises(ValueError):
        parse_port_spec(spec)


@pytest.mark.parametrize("text, expected", [
    ("10.1.2.3", "10.1.2.3"),
    ("0:0:0:0:0:0:0:1", "::1"),
    ("fe80:0:0:0:9d2b:5c5:1d9:8f2a", "fe80::9d2b:5c5:1d9:8f2a"),
    ("::ffff:10.1.2.3", "10.1.2.3"),
    ("0:0:0:0:0:ffff:a00:1", "10.0.0.1"),
    ("[::1]", "::1"),
    ("fe80::1%12", "fe80::1"),
    ("example.com", None), ("", None), ("-", None), ("10.0.0.256", None), ("１０.0.0.1", None),
])
def test_parse_ip(text, expected):
    address = parse_ip(text)
    assert (None if address is None else str(address)) == expected


def test_default_internal_networks():
    internal = lookups.load_internal_networks(ROOT)
    inside = ["10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.1.1", "127.0.0.1", "169.254.1.1",
              "100.64.0.1", "0:0:0:0:0:0:0:1", "fe80:0:0:0:1:2:3:4", "fd00::1", "::ffff:192.168.0.1"]
    outside = ["172.217.1.1", "172.32.0.1", "8.8.8.8", "93.184.216.34", "100.128.0.1", "2001:4860::8888", "fec0::1"]
    assert [a for a in inside if not internal.contains(parse_ip(a))] == []
    assert [a for a in outside if internal.contains(parse_ip(a))] == []
    assert not internal.contains(None)



_networks = st.lists(st.one_of(
    st.builds(lambda n, length: ipaddress.IPv4Network((n, length), strict=False),
              st.integers(0, 2 ** 32 - 1), st.integers(0, 32)),
    st.builds(lambda n, length: ipaddress.IPv6Network((n, length), strict=False),
              st.integers(0, 2 ** 128 - 1), st.integers(0, 128))), max_size=12)
_octet_texts = st.one_of(st.integers(0, 300).map(str), st.sampled_from(["00", "01", "010", "0255", "", " 1", "1 ", "+1", "\u0661", "２"]))
_address_texts = st.one_of(
    st.lists(_octet_texts, min_size=3, max_size=5).map(".".join),
    st.integers(0, 2 ** 32 - 1).map(lambda n: str(ipaddress.IPv4Address(n))),
    st.integers(0, 2 ** 128 - 1).map(lambda n: str(ipaddress.IPv6Address(n))),
    st.integers(0, 2 ** 32 - 1).map(lambda n: "::ffff:" + str(ipaddress.IPv4Address(n))),
    st.text(alphabet="0123456789.:abcdef%[] \t\n", max_size=24))


@settings(max_examples=400, deadline=None)
@given(networks=_networks, texts=st.lists(_address_texts, min_size=1, max_size=20))
def test_network_set_is_a_plain_scan(networks, texts):
    """Merged ranges and the dotted-quad shortcut answer as a scan of every network over
    parse_ip's address does, for overlapping and nested networks and text that is almost an address."""
    internal = NetworkSet(networks)
    for text in texts:
        address = parse_ip(text)
        expected = address is not None and any(address.version == net.version and address in net for net in networks)
        assert internal.contains(address) == expected, text
        assert internal.contains_text(text) == expected, text
        assert ip_number(text) == (None if address is None else (address.version, int(address))), text

def test_default_process_lookup_contents():
    names = lookups.load_processes(ROOT)
    cats = lookups.CATEGORIES
    original = {
        "ScriptInterpreter": "powershell pwsh cmd wscript cscript mshta wmic",
        "LOLBin": "rundll32 regsvr32 certutil bitsadmin msbuild csc installutil regasm regsvcs ieexec expand "
                  "extrac32 makecab pcalua hh xwizard",
        "UnusualSystemProcess": "notepad calc mspaint wordpad write winver charmap snippingtool",
    }
    for category, words in original.items():
        for word in words.split():
            assert cats[names[word + ".exe"]] == category, word
    assert cats[names["nslookup.exe"]] == "LOLBin"
    assert sum(len(words.split()) for words in original.values()) == 31
    assert all(name == name.lower() for name in names)


def _copy_app(tmp_path):
    root = tmp_path / "app"
    shutil.copytree(os.path.join(ROOT, "lookups"), root / "lookups")
    return str(root)


def _write(root, name, text):
    with open(os.path.join(root, "lookups", name), "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def test_hand_edited_lookup_variants_still_load(tmp_path):
    root = _copy_app(tmp_path)
    _write(root, lookups.PROCESSES,
           "\ufeffPROCESS , Category,Source,notes\r\n\r\n PowerShell.exe ,scriptinterpreter,site,\"quoted, note\"\r\n"
           "\"certutil.exe\",LOLBin,site,\r\n,,,\r\n")
    names = lookups.load_processes(root)
    assert names == {"powershell.exe": 0, "certutil.exe": 1}


@pytest.mark.parametrize("filename, text, row, problem", [
    (lookups.PROCESSES, "process,source\nx.exe,site\n", 1, "missing column category"),
    (lookups.PROCESSES, "process,category\ncmd.exe,LOLBin\nCMD.EXE,ScriptInterpreter\n", 3, "listed twice (rows 2 and 3) with two categories"),
    (lookups.PROCESSES, "process,category\ncmd.exe,Evil\n", 2, "unknown category"),
    (lookups.PROCESSES, "process,category\nC:\\x\\cmd.exe,LOLBin\n", 2, "must be a file name"),
    (lookups.PORTS, "port,service\n80,http\neighty,http\n", 3, "bad port"),
    (lookups.INTERNAL_NETWORKS, "cidr,description\n10.0.0.0/33,x\n", 2, "bad CIDR"),
    (lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\ncmd.exe,,,,,r,soon\n", 2, "not a date"),
    (lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\n,,,,,everything,\n", 2, "matches every event"),
    (lookups.FIELD_PROFILES, "profile,role,priority,field,inbound_value\nx,image,one,Image,\n", 2, "not a whole number"),
    (lookups.FIELD_PROFILES, "profile,role,priority,field,inbound_value\nx,image,1,Image,\n", None, "has no 'port' field"),
])
def test_malformed_lookups_name_file_row_problem(tmp_path, filename, text, row, problem):
    root = _copy_app(tmp_path)
    _write(root, filename, text)
    with pytest.raises(LookupProblem) as caught:
        classifier.Settings(root, today=datetime.date(2026, 1, 1)).load()
    assert caught.value.filename == filename
    assert caught.value.row == row
    assert problem in str(caught.value)
    assert str(caught.value).startswith(filename)


def test_missing_lookup_file(tmp_path):
    root = _copy_app(tmp_path)
    os.remove(os.path.join(root, "lookups", lookups.PORTS))
    with pytest.raises(LookupProblem, match="classifyport_ports.csv: cannot be read"):
        classifier.Settings(root).load()


def test_expired_allowlist_rows_are_ignored(tmp_path):
    root = _copy_app(tmp_path)
    _write(root, lookups.ALLOWLIST, "process,dest_cidr,port,host,user,reason,expires\n"
                                    "cmd.exe,,,,,old,2025-12-31\npowershell.exe,,,,,current,2026-01-01\n")
    settings = classifier.Settings(root, today=datetime.date(2026, 1, 1)).load()
    assert settings.expired_rows == [2]
    assert [rule.reason for rule in settings.allowlist.rules] == ["current"]


def _rule(row, process="", cidr="", port="", host="", user="", reason="r"):
    return AllowRule(row, process, ipaddress.ip_network(cidr) if cidr else None,
                     PortSet(parse_port_spec(port)) if port else None, host, user, reason)


def test_allowlist_matching_and_precedence():
    allow = Allowlist([
        _rule(2, process="powershell.exe", cidr="10.0.0.0/8", reason="it automation"),
        _rule(3, process="*\\ccmcache\\*", reason="sccm"),
        _rule(4, process="cert*.exe", port="80", host="DIST-*", reason="software distribution"),
        _rule(5, user="svc_*", reason="service accounts"),
    ])

    def reason(image, dest="8.8.8.8", port=443, host="h", user="u"):
        rule = allow.match(image, classifier.basename(image), ip_number(dest), port, host, user)
        return rule.reason if rule else None

    assert reason("C:\\w\\PowerShell.exe", dest="10.2.3.4") == "it automation"
    assert reason("C:\\w\\PowerShell.exe", dest="11.2.3.4") is None
    assert reason("C:\\w\\PowerShell.exe", dest="0:0:0:0:0:ffff:a00:1") == "it automation"
    assert reason("C:\\Windows\\ccmcache\\1\\cmd.exe") == "sccm"
    assert reason("C:\\w\\certutil.exe", port=80, host="dist-07") == "software distribution"
    assert reason("C:\\w\\certutil.exe", port=443, host="dist-07") is None
    assert reason("C:\\w\\certutil.exe", port=80, host="web-01") is None
    assert reason("C:\\w\\PowerShell.exe", dest="10.0.0.1", user="svc_backup") == "it automation"
    assert reason("C:\\w\\mshta.exe", user="SVC_deploy") == "service accounts"


def _classify(records, **options):
    settings = classifier.Settings(ROOT, **options)
    engine = classifier.Classifier(settings)
    return list(engine.process([dict(r) for r in records])), engine


def test_classify_labels_outbound_listed_process_on_listed_port():
    records = [
        {"Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\PowerShell.EXE", "DestinationPort": "443",
         "DestinationIp": "93.184.216.34", "Initiated": "true"},
        {"Image": "C:\\tools\\xcmd.exe", "DestinationPort": "443", "DestinationIp": "8.8.8.8", "Initiated": "true"},
        {"Image": "C:\\Windows\\System32\\certutil.exe", "DestinationPort": "8080", "DestinationIp": "8.8.8.8"},
        {"Image": "C:\\Windows\\System32\\notepad.exe", "DestinationPort": "0443", "DestinationIp": "10.0.0.5"},
        {"Image": "C:\\Windows\\System32\\cmd.exe", "DestinationPort": "443", "DestinationIp": "8.8.8.8", "Initiated": "FALSE"},
    ]
    out, _ = _classify(records, mode="annotate")
    assert [r["SuspicionLabel"] for r in out] == ["ScriptInterpreter", "", "", "UnusualSystemProcess", ""]
    assert [r["ImageBasename"] for r in out] == ["PowerShell.EXE", "xcmd.exe", "certutil.exe", "notepad.exe", "cmd.exe"]
    assert [r["DestPort"] for r in out] == ["443", "443", "8080", "443", "443"]
    assert [r["IsInternal"] for r in out] == ["0", "0", "0", "1", "0"]
    assert [(r["IsScriptInterpreter"], r["IsLOLBin"], r["IsUnusualSystem"]) for r in out] == [
        ("1", "0", "0"), ("0", "0", "0"), ("0", "1", "0"), ("0", "0", "1"), ("1", "0", "0")]
    filtered, _ = _classify(records)
    assert [r["ImageBasename"] for r in filtered] == ["PowerShell.EXE", "notepad.exe"]
    both, _ = _classify(records, direction="any")
    assert [r["ImageBasename"] for r in both] == ["PowerShell.EXE", "notepad.exe", "cmd.exe"]
    custom, _ = _classify(records, ports="8000-8100")
    assert [r["ImageBasename"] for r in custom] == ["certutil.exe"]


def test_classify_counts_missing_fields_and_keeps_multivalue():
    records = [{"Image": ["C:\\a\\cmd.exe", "C:\\b\\x.exe"], "DestinationPort": "53"}, {"DestinationPort": "53"},
               {"Image": "cmd.exe", "DestinationPort": ""}, {"Image": "", "DestinationPort": ""}]
    out, engine = _classify(records, mode="annotate")
    assert out[0]["Image"] == ["C:\\a\\cmd.exe", "C:\\b\\x.exe"]
    assert out[0]["SuspicionLabel"] == "ScriptInterpreter"
    assert engine.missing == {"Image": 2, "DestinationPort": 2}


def test_profiles_and_overrides():
    cim = [{"app": "", "process_name": "certutil.exe", "dest_port": "80", "dest": "10.1.1.1", "direction": "outbound"},
           {"app": "C:\\x\\mshta.exe", "dest_port": "443", "dest_ip": "8.8.8.8", "direction": "inbound"}]
    out, _ = _classify(cim, profile="cim", mode="annotate")
    assert [(r["SuspicionLabel"], r["IsInternal"]) for r in out] == [("LOLBin", "1"), ("", "0")]
    mde = [{"InitiatingProcessFileName": "powershell.exe", "RemotePort": "443", "RemoteIP": "fd00::5",
            "ActionType": "ConnectionSuccess"},
           {"InitiatingProcessFileName": "powershell.exe", "RemotePort": "443", "RemoteIP": "8.8.8.8",
            "ActionType": "InboundConnectionAccepted"}]
    out, _ = _classify(mde, profile="MDE", mode="annotate")
    assert [(r["SuspicionLabel"], r["IsInternal"]) for r in out] == [("ScriptInterpreter", "1"), ("", "0")]
    custom = [{"proc": "C:\\x\\wmic.exe", "p": "135", "d": "192.168.1.1"}]
    out, _ = _classify(custom, image="proc", port="p", dest="d")
    assert [(r["SuspicionLabel"], r["IsInternal"]) for r in out] == [("ScriptInterpreter", "1")]


@pytest.mark.parametrize("option, message", [
    ({"profile": "x"}, "allowed values: cim, mde, sysmon"),
    ({"mode": "bogus"}, "allowed values: filter, annotate"),
    ({"direction": "in"}, "allowed values: outbound, any"),
])
def test_settings_reject_bad_values(option, message):
    with pytest.raises(ValueError, match=message):
        classifier.Settings(ROOT, **option)


def _many_values_body(count):
    """A chunk body in which every record has its own image, port and destination."""
    rows = ["Image,DestinationPort,DestinationIp"]
    rows += ["C:\\p%d\\%s,%d,10.%d.%d.%d" % (i, ("cmd.exe", "app.exe")[i % 2], i % 70000, i // 65536, i // 256 % 256, i % 256)
             for i in range(count)]
    return "\r\n".join(rows) + "\r\n"


@pytest.mark.parametrize("mode", classifier.MODES)
def test_caches_stay_bounded(monkeypatch, mode):
    """Every per-value cache stops at its bound (the CSV reader's at LARGE_CACHE_LIMIT, the others
    at CACHE_LIMIT), and clearing them changes no output: the same chunks give the same replies."""
    from portclassify.csvchunk import ChunkClassifier

    records = [{"Image": "C:\\p%d\\cmd.exe" % i, "DestinationPort": str(i % 70000),
                "DestinationIp": "10.0.%d.%d" % (i // 256 % 256, i % 256)} for i in range(5000)]
    bodies = [_many_values_body(2500), _many_values_body(2500).replace("10.", "192.", 700)]
    settings_ = classifier.Settings(ROOT, mode=mode)
    roomy = ChunkClassifier(classifier.Classifier(settings_))
    expected = [roomy.process(body) for body in bodies]
    expected_records = [dict(record) for record in classifier.Classifier(settings_).process([dict(r) for r in records])]

    monkeypatch.setattr(bounded, "CACHE_LIMIT", 50)
    monkeypatch.setattr(bounded, "LARGE_CACHE_LIMIT", 60)
    engine = classifier.Classifier(settings_)
    assert [dict(record) for record in engine.process(records)] == expected_records
    chunks = ChunkClassifier(classifier.Classifier(settings_))
    assert [chunks.process(body) for body in bodies] == expected
    # annotate keeps every record; filter the cmd.exe ones on listed ports (22, 80, 135...).
    assert sum(count for _, count in expected) == 5000 if mode == "annotate" else 0 < sum(count for _, count in expected) < 20
    caches = [engine._images, engine._dests, chunks._rests, chunks._cells, chunks.classifier._images,
              chunks.classifier._dests]
    assert max(map(len, caches)) <= 50
    assert max(len(chunks._images), len(chunks._ports), len(chunks._dests)) <= 60
    assert len(chunks._images) > 0 and (mode == "filter" or len(chunks._dests) > 0)


def test_renamed_binary_is_classified_by_original_file_name():
    records = [
        {"Image": "C:\\Users\\Public\\update.exe", "OriginalFileName": "PowerShell.EXE", "DestinationPort": "443",
         "DestinationIp": "93.184.216.34"},
        {"Image": "C:\\Windows\\System32\\certutil.exe", "OriginalFileName": "PowerShell.EXE", "DestinationPort": "80",
         "DestinationIp": "10.1.1.1"},
        {"Image": "C:\\Users\\Public\\updater.exe", "OriginalFileName": "Updater.exe.mui", "DestinationPort": "443",
         "DestinationIp": "8.8.8.8"},
        {"Image": "C:\\Users\\Public\\updater.exe", "DestinationPort": "443", "DestinationIp": "8.8.8.8"},
        {"Image": "C:\\Windows\\System32\\cmd.exe", "OriginalFileName": "notepad.exe", "DestinationPort": "443",
         "DestinationIp": "8.8.8.8"},
        {"Image": "C:\\Users\\Public\\update.exe", "DestinationPort": "443", "DestinationIp": "8.8.8.8"},
    ]
    out, _ = _classify(records, mode="annotate")
    assert [(r["ImageBasename"], r["SuspicionLabel"], r["MatchedOn"]) for r in out] == [
        ("update.exe", "ScriptInterpreter", "OriginalFileName"),
        ("certutil.exe", "ScriptInterpreter", "OriginalFileName"),  # a PowerShell renamed to a LOLBin's name
        ("updater.exe", "", ""),
        ("updater.exe", "", ""),
        ("cmd.exe", "ScriptInterpreter", "Image"),    # the higher-ranked label wins
        ("update.exe", "LOLBin", "Image"),            # Squirrel's Update.exe is itself a LOLBAS entry
    ]
    mde = [{"InitiatingProcessFileName": "svc.exe", "InitiatingProcessVersionInfoOriginalFileName": "rundll32.exe",
            "RemotePort": "443", "RemoteIP": "8.8.8.8", "ActionType": "ConnectionSuccess"}]
    out, _ = _classify(mde, profile="mde")
    assert [(r["SuspicionLabel"], r["MatchedOn"]) for r in out] == [
        ("LOLBin", "InitiatingProcessVersionInfoOriginalFileName")]


def test_techniques_and_risk_come_from_the_lookups():
    records = [
        {"Image": "C:\\w\\powershell.exe", "DestinationPort": "443", "DestinationIp": "93.184.216.34"},
        {"Image": "C:\\w\\powershell.exe", "DestinationPort": "443", "DestinationIp": "10.0.0.9"},
        {"Image": "C:\\w\\nslookup.exe", "DestinationPort": "53", "DestinationIp": "8.8.8.8"},
        {"Image": "C:\\w\\notepad.exe", "DestinationPort": "3389", "DestinationIp": "8.8.8.8"},
        {"Image": "C:\\w\\svc.exe", "OriginalFileName": "bitsadmin.exe", "DestinationPort": "443",
         "DestinationIp": "8.8.8.8"},
        {"Image": "C:\\w\\chrome.exe", "DestinationPort": "443", "DestinationIp": "8.8.8.8"},
    ]
    out, _ = _classify(records, mode="annotate")
    assert [r["mitre_technique_id"] for r in out] == [
        ["T1059", "T1059.001", "T1071.001"],
        ["T1059", "T1059.001", "T1071.001"],
        ["T1105", "T1071.004"],
        ["T1055", "T1571"],
        ["T1105", "T1197", "T1071.001"],      # the renamed binary's own techniques
        "",
    ]
    assert [r["risk_score"] for r in out] == ["56", "32", "64", "72", "64", ""]
    for technique in (t for r in out for t in (r["mitre_technique_id"] or [])):
        assert technique != "T1043"


@pytest.mark.parametrize("filename, text, row, problem", [
    (lookups.TECHNIQUES, "match,value,technique_id\nlabel,LOLBin,T1105\nport,80,1071\n", 3, "is not an ATT&CK ID"),
    (lookups.TECHNIQUES, "match,value,technique_id\nlabel,Evil,T1105\n", 2, "unknown label"),
    (lookups.TECHNIQUES, "match,value,technique_id\nhost,x,T1105\n", 2, "unknown match"),
    (lookups.RISK, "label,destination,risk_score\nLOLBin,external,101\n", 2, "from 0 to 100"),
    (lookups.RISK, "label,destination,risk_score\nLOLBin,outside,10\n", 2, "internal or external"),
    (lookups.RISK, "label,destination,risk_score\nLOLBin,external,10\nLOLBin,external,20\n", 3, "scored twice"),
    (lookups.RISK, "label,destination,risk_score\nLOLBin,external,10\n", None, "no risk_score for ScriptInterpreter"),
])
def test_malformed_technique_and_risk_lookups(tmp_path, filename, text, row, problem):
    root = _copy_app(tmp_path)
    _write(root, filename, text)
    with pytest.raises(LookupProblem) as caught:
        classifier.Settings(root).load()
    assert (caught.value.filename, caught.value.row) == (filename, row)
    assert problem in str(caught.value)
