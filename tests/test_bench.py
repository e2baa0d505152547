"""tools/bench.py and its yardsticks (tools/bench_commands/): the harness is correct.

Never timed: nothing here asserts a speed. It checks that the generated stream is
valid SCP v2 with the records the generator made, that the yardsticks are what
they claim (the no-op and the floor return every record unchanged, the naive
command labels exactly what the original SPL labels), that the harness counts
replies and records and measures the command's own memory, and that
`tools/bench.py --quick` runs end to end and writes a report with every scenario.
"""
import argparse
import collections
import csv
import io
import json
import os
import re
import subprocess
import sys
import threading
import time

import pytest

import bench
import oracle_spl
import scpv2
from conftest import ROOT, shared_path

COMMANDS_DIR = os.path.join(ROOT, "tools", "bench_commands")
NOOP = os.path.join(COMMANDS_DIR, "noop.py")
NAIVE = os.path.join(COMMANDS_DIR, "naive.py")
FLOOR = os.path.join(COMMANDS_DIR, "floor.py")
SAMPLES = os.path.join(ROOT, "samples", "sysmon_eid3.jsonl")


def generated(count, **pools):
    return [event for _, event in bench.generate_events(count, **pools)]


def sent_records(stdin):
    """The records splunkd sent, as decoded from the request chunks."""
    return [record for meta, body in scpv2.read_chunks(stdin)[1:] for record in scpv2.decode_records(body)]


def awkward_records():
    """Records a real search can send: quotes, commas, CR/LF, `$`, unicode, multivalue, empty and missing cells."""
    return [
        {"_time": "1700000000.001", "Image": 'C:\\Program Files\\a "quoted", b\\x.exe', "DestinationPort": "443",
         "tag": ["a$b", "c;d", "e\nf"], "note": "line1\r\nline2", "uni": "caf\u00e9 \u05e9\u05dc\u05d5\u05dd \U0001f600"},
        {"_time": "1700000000.002", "Image": "", "DestinationPort": "", "tag": ["only"], "note": "$$", "uni": ","},
        {"_time": "1700000000.003", "DestinationPort": " 443", "tag": [], "note": '"', "uni": "\t"},
    ]


# ------------------------------------------------------------------------------------------------
# The generated stream

@pytest.fixture(scope="module")
def small_streams(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("streams"))
    full, selected = bench.Stream(250, 100, "full"), bench.Stream(250, 100, "selected")
    bench.write_streams([full, selected], directory)
    return {stream: bench.load_stream_meta(stream, directory) for stream in (full, selected)}


@pytest.mark.parametrize("shape", ["full", "selected"])
def test_generated_stream_is_valid_scpv2_with_the_generated_records(small_streams, shape):
    stream = bench.Stream(250, 100, shape)
    meta = small_streams[stream]
    with open(meta["path"], "rb") as handle:
        data = handle.read()
    chunks = scpv2.read_chunks(data, strict=True)
    assert chunks[0][0]["action"] == "getinfo" and chunks[0][1] == ""
    assert len(scpv2.encode_chunk(chunks[0][0])) == meta["data_offset"]
    executes = chunks[1:]
    assert [m["action"] for m, _ in executes] == ["execute"] * 4
    assert [m["finished"] for m, _ in executes] == [False, False, False, True]
    assert [len(scpv2.decode_records(body)) for _, body in executes] == [100, 100, 50, 0]
    assert executes[-1][1] == ""
    assert meta["events"] == 250 and meta["chunks"] == 3 and meta["bytes"] == len(data)
    assert sum(meta["kinds"].values()) == 250
    # The bytes are exactly tools/scpv2.py's splunkd encoding of the generated events.
    events = generated(250)
    fields = list(stream.fields)
    for number, (_, body) in enumerate(executes[:-1]):
        assert body == scpv2.encode_records(events[number * 100:(number + 1) * 100], fields)
    records = [record for _, body in executes for record in scpv2.decode_records(body)]
    assert records == [{name: event[name] for name in fields} for event in events]


def test_streams_are_cached_and_regenerated_when_stale(tmp_path):
    stream = bench.Stream(20, 10, "selected")
    first = bench.ensure_streams([stream], str(tmp_path))[stream]
    mtime = os.path.getmtime(first["path"])
    assert bench.ensure_streams([stream], str(tmp_path))[stream]["bytes"] == first["bytes"]
    assert os.path.getmtime(first["path"]) == mtime  # reused
    with open(first["path"], "ab") as handle:
        handle.write(b"x")
    again = bench.ensure_streams([stream], str(tmp_path))[stream]
    assert os.path.getsize(again["path"]) == first["bytes"]


def test_generator_is_deterministic_and_a_shorter_stream_is_a_prefix():
    assert generated(300) == generated(300)
    assert generated(120) == generated(300)[:120]
    assert generated(50, seed=7) != generated(50)
    assert set(generated(1)[0]) == set(bench.FULL_FIELDS)
    assert set(bench.SELECTED_FIELDS) <= set(bench.FULL_FIELDS)


def test_generated_events_look_like_sysmon_eid3_in_splunk():
    pairs = list(bench.generate_events(20000))
    events = [event for _, event in pairs]
    kinds = collections.Counter(kind for kind, _ in pairs)
    assert 0.04 < kinds["hit"] / 20000 < 0.06
    inbound = sum(event["Initiated"] == "false" for event in events)
    assert 0.15 < inbound / 20000 < 0.28
    ipv6 = sum(event["DestinationIsIpv6"] == "true" for event in events)
    assert 0.05 < ipv6 / 20000 < 0.15
    internal = sum(bool(re.match(r"(10\.|172\.(1[6-9]|2[0-9]|3[01])\.|192\.168\.)", event["DestinationIp"]))
                   for event in events if event["Initiated"] == "true")
    assert 0.3 < internal / (20000 - inbound) < 0.6
    assert len({event["Image"] for event in events}) > 500
    assert len({event["DestinationIp"] for event in events}) > 2000
    mean_raw = sum(len(event["_raw"]) for event in events) / len(events)
    assert 1300 < mean_raw < 1700
    for event in events[:200]:
        raw = event["_raw"]
        assert raw.startswith("<Event xmlns=") and raw.endswith("</Event>") and "\n" not in raw
        assert "<EventID>3</EventID>" in raw and event["EventCode"] == "3"
        for name in ("Image", "DestinationIp", "DestinationPort", "ProcessGuid", "Initiated"):
            escaped = event[name].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            assert "<Data Name='%s'>%s</Data>" % (name, escaped) in raw
        assert event["_si"] == ["idx-01", "wineventlog"] and isinstance(event["tag"], list)


def test_the_pools_set_how_many_distinct_images_and_destinations():
    events = generated(5000, images=50, dests=40)
    benign = {event["Image"] for event in events if event["Image"] not in bench.LISTED_IMAGES}
    assert len(benign) <= 50
    remote = {event["DestinationIp"] if event["Initiated"] == "true" else event["SourceIp"] for event in events}
    assert len(remote) <= 40
    assert len({bench.destination(number)[0] for number in range(100000)}) > 95000
    assert len({bench.benign_image(number) for number in range(100000)}) == 100000


def _lookup_processes():
    with open(os.path.join(ROOT, "lookups", "classifyport_processes.csv"), encoding="utf-8") as handle:
        return {row["process"].lower() for row in csv.DictReader(handle)}


def _naive_regexes():
    sys.path.insert(0, COMMANDS_DIR)
    try:
        import naive
    finally:
        sys.path.remove(COMMANDS_DIR)
    return naive


def test_listed_images_are_listed_and_benign_images_are_not():
    listed = _lookup_processes()
    naive = _naive_regexes()
    for image in bench.LISTED_IMAGES:
        assert image.rsplit("\\", 1)[-1].lower() in listed, image
    for number in list(range(len(bench.BENIGN_IMAGES))) + list(range(1000, 3000)):
        image = bench.benign_image(number)
        name = image.rsplit("\\", 1)[-1].lower()
        assert name not in listed, image
        for regex in (naive.SCRIPT_INTERPRETER, naive.LOLBIN, naive.UNUSUAL_SYSTEM):
            assert not regex.search(name), image


def test_the_designed_hits_are_what_classifyport_labels():
    """The generator's `hit` events are exactly the events `| classifyport` labels (so the bench can check its count)."""
    pairs = list(bench.generate_events(3000))
    for number, (_, event) in enumerate(pairs):
        assert event["_serial"] == str(number)
    events = [event for _, event in pairs]
    result = scpv2.run(["mode=annotate"], [events[i:i + 1000] for i in range(0, len(events), 1000)])
    assert result.returncode == 0, result.stderr
    assert len(result.records) == len(pairs)
    for record in result.records:
        kind = pairs[int(record["_serial"])][0]
        assert (record["SuspicionLabel"] != "") == (kind == "hit"), (kind, record["Image"], record["DestinationPort"])


# ------------------------------------------------------------------------------------------------
# The yardsticks

@pytest.mark.parametrize("command", [NOOP, FLOOR], ids=["noop", "floor"])
def test_noop_and_floor_return_every_record_unchanged(command):
    chunks = [generated(120)[:60], awkward_records(), generated(120)[60:], []]
    stdin = scpv2.build_input([], chunks)
    result = scpv2.run_strict(stdin=stdin, command=command)
    assert result.returncode == 0, result.stderr
    assert result.getinfo["type"] == "streaming"
    assert result.records == sent_records(stdin)
    assert [len(records) for _, records in result.replies] == [60, 3, 60, 0, 0]


def test_the_floor_replies_in_the_sdk_shape():
    stdin = scpv2.build_input([], [awkward_records()])
    floor = scpv2.run(stdin=stdin, command=FLOOR)
    noop = scpv2.run(stdin=stdin, command=NOOP)
    assert floor.chunks[1][1] == noop.chunks[1][1]  # same body bytes as splunklib writes


def test_the_floor_reports_a_stream_without_getinfo():
    result = scpv2.run(stdin=scpv2.encode_chunk({"action": "execute", "finished": True}), command=FLOOR)
    assert result.returncode == 1
    assert result.messages("ERROR")


@pytest.fixture(scope="module")
def oracle():
    return oracle_spl.load(shared_path("seed", "original-detection.txt"))


def oracle_cases():
    with open(SAMPLES, encoding="utf-8") as handle:
        samples = [json.loads(line) for line in handle if line.strip()]
    edge = []
    for image in ("C:\\x\\xcmd.exe", "C:\\x\\CMD.EXE", "C:/Windows/System32/cmd.exe", "cmd.exe.bak",
                  "C:\\x\\cmdl32.exe", "C:\\x\\overwrite.exe", "C:\\x\\nslookup.exe", "C:\\a\\b\\wscript.exe"):
        for port in ("443", "0443", "443.0", " 443", "8443", "", "x"):
            for dest in ("10.1.2.3", "172.16.0.1", "172.32.0.1", "8.8.8.8", "fe80:0:0:0:1:2:3:4"):
                edge.append({"Image": image, "DestinationPort": port, "DestinationIp": dest})
    edge.append({"DestinationPort": "443", "DestinationIp": "10.0.0.1"})  # no Image
    edge.append({"Image": "C:\\x\\cmd.exe", "DestinationIp": "10.0.0.1"})  # no port
    edge.append({"Image": ["C:\\x\\cmd.exe", "C:\\x\\calc.exe"], "DestinationPort": "443"})  # multivalue
    events = [dict(event) for event in samples] + generated(1500) + edge
    for number, event in enumerate(events):
        event["case"] = str(number)
    return events


@pytest.mark.parametrize("mode", ["filter", "annotate"])
def test_the_naive_command_labels_what_the_original_spl_labels(oracle, mode):
    events = oracle_cases()
    chunks = [events[i:i + 500] for i in range(0, len(events), 500)]
    stdin = scpv2.build_input(["mode=" + mode], chunks)
    result = scpv2.run_strict(stdin=stdin, command=NAIVE)
    assert result.returncode == 0, result.stderr
    sent = {record["case"]: record for record in sent_records(stdin)}
    got = {record["case"]: record for record in result.records}
    expected = {}
    for case, record in sent.items():
        # What splunkd sent: a field the record lacked arrives empty; null (None) only when absent.
        evaluated = oracle.evaluate({name: value for name, value in record.items() if value != ""})
        if mode == "annotate" or evaluated["kept"]:
            expected[case] = evaluated
    assert set(got) == set(expected)
    assert len(result.records) == len(expected)
    for case, evaluated in expected.items():
        record = got[case]
        for name in ("ImageBasename", "IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem", "IsInternal",
                     "SuspicionLabel", "DestPort"):
            want = evaluated[name]
            want = "" if want is None else str(want)
            assert record[name] == want, (case, name, sent[case])
        for name, value in sent[case].items():
            assert record[name] == value
    if mode == "filter":
        labels = collections.Counter(record["SuspicionLabel"] for record in result.records)
        assert labels["ScriptInterpreter"] and labels["LOLBin"] and labels["UnusualSystemProcess"]


def test_the_naive_regexes_are_the_original_searchs(oracle):
    naive = _naive_regexes()
    assert dict(oracle.categories) == {"IsScriptInterpreter": naive.SCRIPT_INTERPRETER.pattern,
                                      "IsLOLBin": naive.LOLBIN.pattern,
                                      "IsUnusualSystem": naive.UNUSUAL_SYSTEM.pattern}
    assert oracle.internal_regex == naive.INTERNAL.pattern
    assert oracle.basename_regex == naive.BASENAME.pattern
    assert oracle.ports == naive.PORTS


# ------------------------------------------------------------------------------------------------
# The harness

def _feed_slowly(fd, data, step):
    try:
        for start in range(0, len(data), step):
            os.write(fd, data[start:start + step])
    finally:
        os.close(fd)


@pytest.mark.parametrize("step", [1, 7, 4096, 1 << 20])
def test_reply_reader_counts_chunks_records_and_messages(step):
    body_crlf = 'a,__mv_a,tag,__mv_tag\r\n1,,"x\ny","$x$;$y$"\r\n"q""\n",,,\r\n'
    body_lf = 'a,b\n1,2\n3,"4\n5"\n6,7\n'
    data = (scpv2.encode_chunk({"type": "streaming"})
            + scpv2.encode_chunk({"finished": False}, body_crlf)
            + scpv2.encode_chunk({"finished": False, "inspector": {"messages": [["WARN", "careful"]]}}, body_lf)
            + scpv2.encode_chunk({"finished": True}))
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=_feed_slowly, args=(write_fd, data, step))
    writer.start()
    try:
        replies, records, size, messages, first = bench._read_replies(read_fd)
    finally:
        writer.join()
        os.close(read_fd)
    assert (replies, records, size) == (4, 5, len(data))
    assert messages == [("WARN", "careful")] and first is not None


def test_reply_reader_rejects_a_truncated_stream():
    read_fd, write_fd = os.pipe()
    data = scpv2.encode_chunk({"finished": False}, "a\n1\n")[:-2]
    _feed_slowly(write_fd, data, len(data))
    try:
        with pytest.raises(bench.BenchError):
            bench._read_replies(read_fd)
    finally:
        os.close(read_fd)


def _context(tmp_path):
    options = argparse.Namespace(workdir=str(tmp_path), python=sys.executable, command_cpus="-")
    return bench.Context(options, ROOT)


def test_run_once_measures_the_command_alone(tmp_path):
    """The command's peak RSS is its own, not the harness's (Linux children inherit the spawner's high-water mark)."""
    stream = bench.Stream(300, 100, "full")
    meta = bench.ensure_streams([stream], str(tmp_path / "streams"))[stream]
    ballast = bytearray(600 * 1024 * 1024)
    for index in range(0, len(ballast), 4096):
        ballast[index] = 1
    run = bench.run_once(bench.COMMAND["floor"], meta, _context(tmp_path))
    del ballast
    assert run.maxrss_kb < 300 * 1024
    assert run.records_out == 300 and run.replies == 1 + 3 + 1
    assert run.cpu > 0 and run.wall > 0 and 0 < run.getinfo_reply < run.wall + 1


def test_run_once_fails_loudly_on_a_broken_command(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import sys\nsys.stdin.buffer.read(10)\nsys.exit(3)\n")
    stream = bench.Stream(10, 5, "selected")
    meta = bench.ensure_streams([stream], str(tmp_path / "streams"))[stream]
    command = bench.Command("broken", "broken", str(broken), passthrough=True)
    with pytest.raises(bench.BenchError, match="exit status 3"):
        bench.run_once(command, meta, _context(tmp_path), timeout=120)


def _fake_result(key, stream, cpu, rss_mb, events):
    run = bench.Run(cpu=cpu, user=cpu, sys=0.0, wall=cpu, maxrss_kb=int(rss_mb * 1024), getinfo_reply=0.1,
                    replies=3, records_out=events, bytes_out=1)
    meta = {"events": events, "fields": 8, "bytes": 1, "mean_raw_bytes": 1, "kinds": dict.fromkeys(bench.KINDS, 0),
            "expected": {}}
    return bench.Scenario("main", bench.COMMAND[key], stream), bench.Result(None, meta, [run])


def test_goals_are_marked_met_or_not_from_the_measured_numbers(tmp_path):
    options = bench.parse_args(["--events", "1000", "--chunk", "500", "--scaling", "100/1000",
                                "--suites", "main,scaling"])
    results, metas = {}, {}
    cpu = {"classifyport-filter": 1.0, "classifyport-annotate": 2.0, "noop": 1.6, "naive-filter": 3.1,
           "naive-annotate": 5.0, "floor": 0.5}
    for shape in ("full", "selected"):
        stream = bench.Stream(1000, 500, shape)
        for key, seconds in cpu.items():
            scenario, result = _fake_result(key, stream, seconds, 100, 1000)
            result.scenario = scenario
            results[scenario] = result
            metas[stream] = result.meta
    for key, rss in (("classifyport-filter", 100), ("classifyport-annotate", 100)):
        scenario, result = _fake_result(key, bench.Stream(100, 500, "full"), 0.1, rss * 0.8, 100)
        results[scenario] = result
    info = {"cpu": "test", "cores": 2, "ram": "1 GiB", "os": "x", "python": "CPython 3", "python_path": "python",
            "sdk": "2.1.1", "commit": "abc", "under_test": "here"}
    text, _ = bench.write_report(str(tmp_path / "r.md"), options, info, results, metas, 1.0, ["--x"])
    goals = text.split("## Goals")[1].split("\n## ")[0]
    rows = [line for line in goals.splitlines() if line.startswith("| classifyport") or line.startswith("| peak")]
    status = {row.split("|")[1].strip(): row.split("|")[3].strip() for row in rows}
    assert status["classifyport mode=filter >= 1.5x the no-op splunklib command (full events)"] == "met"  # 1.6x
    assert status["classifyport mode=annotate >= 1.5x the no-op splunklib command (full events)"] == "**not met**"  # 0.8x
    assert status["classifyport mode=filter >= 3x the naive command, mode=filter (full events)"] == "met"  # 3.1x
    assert status["classifyport mode=annotate >= 3x the naive command, mode=annotate (full events)"] == "**not met**"
    rss_rows = [value for name, value in status.items() if name.startswith("peak RSS")]
    assert rss_rows == ["**not met**", "**not met**"]  # +25%
    assert "1.60x (1,000 vs 625 records/CPU-s)" in goals


def test_issue5_goals_are_marked_met_or_not_from_the_measured_numbers(tmp_path):
    options = bench.parse_args(["--events", "1000", "--chunk", "500", "--longrun-events", "10000",
                                "--suites", "allowlist,longrun"])
    results, metas = {}, {}
    # allowlist: filter keeps 85% (met), annotate 75% (not met)
    for shape in ("full", "selected"):
        stream = bench.Stream(1000, 500, shape)
        for key, seconds in (("classifyport-filter", 1.0), ("classifyport-filter-allow10k", 1.0 / 0.85),
                             ("classifyport-annotate", 1.0), ("classifyport-annotate-allow10k", 1.0 / 0.75)):
            scenario, result = _fake_result(key, stream, seconds, 100, 1000)
            result.scenario = scenario
            results[scenario] = result
            metas[stream] = result.meta
    # long run: filter +5% (met), annotate +12% (not met)
    small, large = bench.longrun_streams(options)
    assert (small.events, large.events, large.images, large.dests) == (100, 10000, 100000, 1200000)
    for key, growth in (("classifyport-filter", 1.05), ("classifyport-annotate", 1.12)):
        for stream, rss in ((small, 100), (large, 100 * growth)):
            scenario, result = _fake_result(key, stream, 1.0, rss, stream.events)
            result.meta.update(distinct_images=77, distinct_dests=888)
            results[scenario] = result
    info = {"cpu": "test", "cores": 2, "ram": "1 GiB", "os": "x", "python": "CPython 3", "python_path": "python",
            "sdk": "2.1.1", "commit": "abc", "under_test": "here"}
    text, _ = bench.write_report(str(tmp_path / "r.md"), options, info, results, metas, 1.0, ["--x"])
    goals = text.split("## Goals (issue #5)")[1].split("\n## ")[0]
    rows = [line for line in goals.splitlines() if line.startswith("| classifyport")]
    status = [(row.split("|")[1].strip(), row.split("|")[3].strip()) for row in rows]
    allow = [value for name, value in status if "allowlist" in name]
    assert allow == ["met", "met", "**not met**", "**not met**"]
    rss = {name.split(":")[0]: value for name, value in status if "peak RSS" in name}
    assert rss == {"classifyport mode=filter": "met", "classifyport mode=annotate": "**not met**"}
    assert "85% (1,000 vs 1,176 records/CPU-s)" not in goals and "85% (850 vs 1,000 records/CPU-s)" in goals
    assert "77 distinct images, 888 distinct destinations" in goals


def test_extract_package_refuses_unsafe_entries(tmp_path):
    import tarfile
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(str(bad), "w:gz") as archive:
        info = tarfile.TarInfo("classifyport/../evil")
        info.size = 0
        archive.addfile(info, io.BytesIO(b""))
    with pytest.raises(bench.BenchError, match="unsafe"):
        bench.extract_package(str(bad), str(tmp_path / "work"))


# ------------------------------------------------------------------------------------------------
# End to end

@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    subprocess.run([sys.executable, os.path.join(ROOT, "tools", "build_package.py"), "--outdir", str(tmp / "dist")],
                   check=True, capture_output=True, cwd=ROOT)
    package = [name for name in os.listdir(str(tmp / "dist")) if name.endswith(".tar.gz")][0]
    report = tmp / "BENCHMARKS.md"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "bench.py"), "--quick",
                           "--package", str(tmp / "dist" / package), "--workdir", str(tmp / "work"),
                           "--write", str(report)], capture_output=True, text=True, cwd=ROOT, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return report.read_text(encoding="utf-8"), proc, tmp


def test_quick_run_writes_a_report_with_every_scenario(quick_report):
    text, proc, tmp = quick_report
    for heading in ("## Machine and run", "## How it is measured", "## Goals (issue #4)",
                    "## Throughput: 10,000 events, 2,000 per chunk", "### Full events", "### Selected fields",
                    "### Ratios", "## Peak RSS by records per chunk", "## Scaling with the number of events",
                    "## Start-up", "## Streams and checks", "## Goals (issue #5)", "## A 10,000-row allowlist",
                    "## Long run and memory"):
        assert heading in text, heading
    assert "Quick run" in text
    assert "| splunk-sdk (vendored) | 2.1.1 |" in text
    assert "classifyport-" in text and "extracted into" in text
    for section in ("### Full events", "### Selected fields", "## Peak RSS by records per chunk", "## Start-up"):
        body = text.split(section)[1].split("\n#")[0]
        for command in bench.COMMANDS:
            assert "| %s |" % command.label in body, (section, command.label)
    scaling = text.split("## Scaling with the number of events")[1].split("\n#")[0]
    for key in bench.SCALING_COMMANDS:
        assert "| %s |" % bench.COMMAND[key].label in scaling
    assert "2,000 events" in scaling and "5,000 events" in scaling and "10,000 events" in scaling
    goals = text.split("## Goals (issue #4)")[1].split("\n## ")[0]
    assert goals.count("1.5x the no-op") == 4 and goals.count("3x the naive") == 4 and goals.count("peak RSS") == 2
    assert all(line.rstrip().endswith(("| met |", "| **not met** |")) for line in goals.splitlines()
               if line.startswith("| classifyport") or line.startswith("| peak"))
    assert "returned exactly the generated `hit` events" in text
    assert "nan" not in text.lower().replace("naive", "")
    assert os.path.isfile(str(tmp / "work" / "app" / "classifyport" / "bin" / "classifyport.py"))
    with open(str(tmp / "work" / "results.json"), encoding="utf-8") as handle:
        saved = json.load(handle)
    interpreters = {"classifyport-filter-py" + version for version in bench.SPLUNK_PYTHONS}
    assert {item["command"] for item in saved["scenarios"]} == set(bench.COMMAND) | interpreters
    startup = text.split("## Start-up")[1].split("\n#")[0]
    for version in bench.SPLUNK_PYTHONS:
        assert "| classifyport mode=filter | %s | 1 |" % version in startup  # --quick: one run each
    goals = text.split("## Goals (issue #5)")[1].split("\n## ")[0]
    assert goals.count("10,000-row allowlist") == 4 and goals.count("peak RSS at 20,000 events") == 2
    longrun = text.split("## Long run and memory")[1].split("\n#")[0]
    assert "| classifyport mode=annotate | 20,000 |" in longrun and "| classifyport mode=filter | 200 |" in longrun
    assert all(run["cpu"] > 0 and run["maxrss_kb"] > 0 for item in saved["scenarios"] for run in item["runs"])


def test_quick_run_records_out_match_the_design(quick_report):
    text, _, _ = quick_report
    table = text.split("### Full events")[1].split("\n#")[0]
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip() for line in table.splitlines()
            if line.startswith("| ") and not line.startswith("| command")}
    for command in bench.COMMANDS:
        if command.passthrough:
            assert rows[command.label] == "10,000"
    assert 0 < int(rows["classifyport mode=filter"].replace(",", "")) < 1000


def test_an_app_variant_runs_from_an_edited_copy(tmp_path):
    """The hook for issue #5's allowlist benchmark: a valid 10,000-row allowlist in a copy of the app."""
    ctx = _context(tmp_path)
    app = ctx.app_dir("allowlist10k")
    assert app != ROOT and os.path.isfile(os.path.join(app, "bin", "classifyport.py"))
    with open(os.path.join(app, "lookups", "classifyport_allowlist.csv"), encoding="utf-8") as handle:
        assert sum(1 for _ in handle) == 10001
    with open(os.path.join(ROOT, "lookups", "classifyport_allowlist.csv"), encoding="utf-8") as handle:
        assert sum(1 for _ in handle) < 10001  # the original is untouched
    stream = bench.Stream(600, 300, "selected")
    meta = bench.ensure_streams([stream], str(tmp_path / "streams"))[stream]
    plain = bench.run_once(bench.COMMAND["classifyport-filter"], meta, ctx)
    command = bench.replace(bench.COMMAND["classifyport-filter"], key="allow10k", variant="allowlist10k")
    edited = bench.run_once(command, meta, ctx)
    assert edited.records_out == plain.records_out == meta["expected"]["classifyport-filter"] > 0


def _running(pid):
    """Whether `pid` is a live process (a zombie waiting for its reaper is not)."""
    try:
        with open("/proc/%d/stat" % pid, encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_terminating_the_bench_stops_the_running_command(tmp_path):
    """SIGTERM (or Ctrl-C) during a run leaves no command behind (they run in their own session)."""
    pid_file = tmp_path / "sleeper.pid"
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text("import os, sys, time\nopen(%r, 'w').write(str(os.getpid()))\ntime.sleep(300)\n"
                       % str(pid_file))
    driver = tmp_path / "driver.py"
    driver.write_text(
        "import signal, sys, argparse\nsys.path.insert(0, %r)\nimport bench\n"
        "signal.signal(signal.SIGTERM, bench._terminate)\n"
        "stream = bench.Stream(10, 5, 'selected')\n"
        "meta = bench.ensure_streams([stream], %r)[stream]\n"
        "options = argparse.Namespace(workdir=%r, python=sys.executable, command_cpus='-')\n"
        "bench.run_once(bench.Command('sleeper', 'sleeper', %r), meta, bench.Context(options, %r))\n"
        % (os.path.join(ROOT, "tools"), str(tmp_path / "streams"), str(tmp_path), str(sleeper), ROOT))
    proc = subprocess.Popen([sys.executable, str(driver)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(600):
            if pid_file.exists() and pid_file.read_text():
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        command_pid = int(pid_file.read_text())
        proc.terminate()
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode != 0 and b"terminated" in stderr
        for _ in range(100):
            if not _running(command_pid):
                break
            time.sleep(0.1)
        else:
            pytest.fail("the command (pid %d) still runs after the bench was terminated" % command_pid)
    finally:
        if proc.poll() is None:
            proc.kill()
