"""Readers for `tools/replay.py`: Sysmon events from EVTX, XmlWinEventLog, JSON lines and Splunk CSV.

Each reader yields plain records (dicts of field name to a string, or to a list
of strings for a multivalue field) named the way the Splunk Add-on for Sysmon
extracts them from the `XmlWinEventLog:Microsoft-Windows-Sysmon/Operational`
sourcetype:

* every `<EventData><Data Name="X">` is the field `X` (Image, DestinationPort,
  ProcessGuid, CommandLine, ...), its value as Windows renders it;
* `EventCode` is the System EventID (the add-on's `sysmon-eventid` transform);
  `EventID` is kept too;
* the other System values keep their element or attribute names: Version,
  Level, Task, Opcode, Keywords, TimeCreated (SystemTime), EventRecordID,
  ProcessID and ThreadID (of the Execution element: Sysmon's own process, not
  the EventData `ProcessId`), Channel, Computer, UserID (Security), Provider
  Name and Guid as ProviderName and ProviderGuid;
* `host` is the machine that logged the event (Computer; NXLog `Hostname`;
  winlogbeat `computer_name`), unless the record already has a `host`;
* `_time` is epoch seconds from UtcTime, else TimeCreated (or an exporter's
  timestamp), unless the record already has an epoch `_time`;
* every other field of the record is kept as it is.

A value the source left empty is dropped for XML, EVTX and CSV (Splunk creates
no field from an empty extraction, and an empty CSV cell is a field the event
did not have); JSON keeps "" as a value, as the bundled samples do.

Malformed records (a JSON line that does not parse, an XML event that is not
well-formed, a CSV row with the wrong number of cells) are counted in a
`Problems` object with their line numbers; reading goes on. Problems that make
a whole file unusable (missing, a directory, unreadable, an unknown format, a
truncated or corrupt EVTX file) raise `ReplayInputError` with a one-line message.
Standard library only, except EVTX, which needs the `evtx` package (PyEvtxParser).
"""
import calendar
import csv
import datetime
import gzip
import io
import json
import os
import re
import struct
# Event XML is parsed by parse_xml, which refuses DTDs and entity declarations.
import xml.etree.ElementTree as ElementTree  # nosec B405
import zlib

FORMATS = ("evtx", "xml", "jsonl", "csv")
EVTX_MAGIC = b"ElfFile\x00"
EVTX_CHUNK_MAGIC = b"ElfChnk\x00"
EVTX_HEADER_SIZE = 4096
EVTX_CHUNK_SIZE = 65536

csv.field_size_limit(max(csv.field_size_limit(), 10485760))


class ReplayInputError(Exception):
    """A file cannot be read at all; the message is one line naming the file."""


class Problems(object):
    """Malformed records per file: counts and the first few line (or record) numbers."""

    KEEP = 5

    def __init__(self):
        self.by_file = {}  # path -> [count, [(where, detail)], unit]
        self.warnings = []

    def add(self, path, where, detail, unit="line"):
        entry = self.by_file.setdefault(path, [0, [], unit])
        entry[0] += 1
        if len(entry[1]) < self.KEEP:
            entry[1].append((where, detail))

    def warn(self, text):
        self.warnings.append(text)

    def count(self, path=None):
        if path is not None:
            return self.by_file.get(path, [0])[0]
        return sum(entry[0] for entry in self.by_file.values())

    def lines(self):
        """Human-readable summary lines, one per file with problems."""
        out = []
        for path, (count, first, unit) in self.by_file.items():
            shown = ", ".join("%s %s (%s)" % (unit, where, detail) for where, detail in first)
            more = " ..." if count > len(first) else ""
            out.append("%s: %d malformed record%s skipped: %s%s"
                       % (path, count, "" if count == 1 else "s", shown, more))
        return out + list(self.warnings)


# ---------------------------------------------------------------- values and time

_GUID_BARE = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}\Z")
_EPOCH = re.compile(r"[0-9]+(?:\.[0-9]*)?\Z")
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,](\d+))?\s*"
                  r"(Z|UTC|[+-]\d\d:?\d\d)?\s*(?:UTC)?\Z", re.IGNORECASE)


def render(value, name=""):
    """A JSON or EVTX typed value as Windows renders it: the string, or None for no value.

    Integers in decimal, booleans `true`/`false`, and a brace-less GUID in a
    `...Guid` field as `{UPPERCASE}` (the `evtx` parser prints GUIDs without braces).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        if name.endswith("Guid") and _GUID_BARE.match(value):
            return "{" + value.upper() + "}"
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def epoch_text(text):
    """Epoch seconds (as Splunk's `_time`, a decimal string) from a timestamp, or None.

    Accepts epoch numbers, Sysmon's `YYYY-MM-DD HH:MM:SS.fff` (UTC), ISO 8601
    with `Z` or an offset, and Splunk exports' `...+0000`; fractions up to
    nanoseconds are cut to microseconds. A time without a zone is UTC.
    """
    if not isinstance(text, str):
        return None
    text = text.strip()
    if _EPOCH.match(text):
        return text
    found = _ISO.match(text)
    if not found:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second))
    except ValueError:
        return None
    seconds = calendar.timegm(moment.timetuple())
    if zone and zone.upper() not in ("Z", "UTC"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        seconds -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    micro = (fraction or "")[:6].ljust(6, "0")
    out = "%d.%s" % (seconds, micro)
    return out.rstrip("0").rstrip(".") if micro != "000000" else "%d" % seconds


def _first(record, *names):
    for name in names:
        value = record.get(name)
        if isinstance(value, list):
            value = value[0] if value else None
        if value not in (None, ""):
            return value
    return None


def finish(record, host_fields=(), time_fields=()):
    """Add EventCode, host and _time the way Splunk would have them; everything else is kept."""
    if record.get("EventCode") in (None, ""):
        code = _first(record, "EventID")
        if code is not None:
            record["EventCode"] = code
    if record.get("host") in (None, "") or not isinstance(record.get("host"), (str, list)):
        host = _first(record, *(tuple(host_fields) + ("Computer",)))
        if host is not None:
            record["host"] = host
    current = record.get("_time")
    if not (isinstance(current, str) and _EPOCH.match(current.strip())):
        moment = None
        if isinstance(current, str):
            moment = epoch_text(current)
        for name in ("UtcTime", "TimeCreated") + tuple(time_fields):
            if moment is not None:
                break
            moment = epoch_text(_first(record, name))
        if moment is not None:
            record["_time"] = moment
    return record


# ---------------------------------------------------------------- file access

def open_bytes(path):
    """The file's bytes (gunzipped when gzip); ReplayInputError for a missing, directory or unreadable path."""
    if not os.path.exists(path):
        raise ReplayInputError("%s: no such file" % path)
    if os.path.isdir(path):
        raise ReplayInputError("%s: is a directory, not an event file" % path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ReplayInputError("%s: cannot read: %s" % (path, error.strerror or error))
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ReplayInputError("%s: a gzip file that does not decompress: %s" % (path, error))
    return data


def decode_text(path, data):
    """Text from bytes: UTF-8 (BOM tolerated) or UTF-16 with a BOM; undecodable bytes become U+FFFD."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", "replace")
    return data.decode("utf-8-sig", "replace")


_SPLUNK_FIELD = re.compile(r"[A-Za-z_@][A-Za-z0-9_.:{}@-]*\Z")


def sniff(path, data):
    """The format of `data` from its content: evtx, xml, jsonl or csv; ReplayInputError when none fits."""
    if data.startswith(EVTX_MAGIC):
        return "evtx"
    if data.startswith(b"ElfChnk\x00"):
        raise ReplayInputError("%s: an EVTX chunk without the file header (a carved fragment?), not an EVTX file" % path)
    text = decode_text(path, data[:65536])
    if "\x00" in text:
        raise ReplayInputError("%s: unknown format (binary data; expected EVTX, XmlWinEventLog, JSON lines or CSV)"
                               % path)
    head = text.lstrip()
    if head.startswith("<"):
        return "xml"
    if head.startswith("{") or head.startswith("["):
        return "jsonl"
    rows = []
    try:
        for row in csv.reader(io.StringIO(text, newline="")):
            if any(cell.strip() for cell in row):
                rows.append(row)
            if len(rows) == 2:
                break
    except csv.Error:
        rows = []
    if len(rows) == 2 and len(rows[0]) >= 2 and len(rows[1]) == len(rows[0]):
        header = rows[0]
        names = [cell for cell in header if _SPLUNK_FIELD.match(cell)]
        if all(cell and cell == cell.strip() for cell in header) and len(names) * 2 >= len(header):
            return "csv"
    raise ReplayInputError("%s: unknown format (expected EVTX, XmlWinEventLog, JSON lines or a CSV with a header row)"
                           % path)


# ---------------------------------------------------------------- XML (XmlWinEventLog)

_EVENT_START = re.compile(r"<Event(?=[\s>/])")
_EVENT_END = "</Event>"
_IGNORABLE = re.compile(r"\s*(?:<\?xml[^>]*\?>|<Events(?:\s[^>]*)?>|</Events>|<!--.*?-->|\s)*\Z", re.DOTALL)


_DTD = re.compile(r"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_xml(text):
    """ElementTree of one event; a DTD or entity declaration (never in Windows event XML) is refused,
    so crafted input cannot expand entities. Raises ElementTree.ParseError."""
    if _DTD.search(text):
        raise ElementTree.ParseError("DTDs and entity declarations are not allowed in event XML")
    # DTDs refused above; expat resolves no external entity.
    return ElementTree.fromstring(text)  # nosec B314


def _local(tag):
    return tag.rsplit("}", 1)[-1] if isinstance(tag, str) else ""


def _text(element):
    return "".join(element.itertext()) if element is not None else ""


def event_from_xml(root):
    """Fields of one parsed <Event> element (System, EventData/UserData, RenderingInfo Message)."""
    record = {}

    def put(name, value):
        if value is None or value == "":
            return
        if name in record:
            existing = record[name]
            record[name] = (existing if isinstance(existing, list) else [existing]) + [value]
        else:
            record[name] = value

    for section in root:
        kind = _local(section.tag)
        if kind == "System":
            for element in section:
                name = _local(element.tag)
                attrs = dict((_local(key), value) for key, value in element.attrib.items())
                if name == "Provider":
                    put("ProviderName", attrs.get("Name"))
                    put("ProviderGuid", attrs.get("Guid"))
                    put("EventSourceName", attrs.get("EventSourceName"))
                elif name == "TimeCreated":
                    put("TimeCreated", attrs.get("SystemTime"))
                elif name == "Execution":
                    put("ProcessID", attrs.get("ProcessID"))
                    put("ThreadID", attrs.get("ThreadID"))
                elif name == "Security":
                    put("UserID", attrs.get("UserID"))
                elif name == "Correlation":
                    put("ActivityID", attrs.get("ActivityID"))
                    put("RelatedActivityID", attrs.get("RelatedActivityID"))
                else:
                    put(name, (element.text or "").strip())
        elif kind == "EventData":
            for element in section:
                name = element.attrib.get("Name") or _local(element.tag)
                put(name, _text(element))
        elif kind == "UserData":
            for container in section:
                for element in container.iter():
                    if len(element) == 0 and element is not container:
                        put(_local(element.tag), _text(element))
        elif kind == "RenderingInfo":
            for element in section:
                if _local(element.tag) == "Message":
                    put("Message", _text(element))
    if "EventID" in record:
        record["EventCode"] = record["EventID"]
    return record


def read_xml(path, text, problems):
    """Events from XmlWinEventLog text: one per line, or multi-line events one after another."""
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def line_of(offset):
        lo, hi = 0, len(line_starts) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if line_starts[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def garbage(start, end):
        between = text[start:end]
        if not _IGNORABLE.match(between):
            offset = start + len(between) - len(between.lstrip())
            problems.add(path, line_of(offset), "not an <Event> element: %r" % between.strip()[:40])

    position = 0
    while True:
        found = _EVENT_START.search(text, position)
        if not found:
            garbage(position, len(text))
            return
        garbage(position, found.start())
        end = text.find(_EVENT_END, found.end())
        next_start = _EVENT_START.search(text, found.end())
        if end < 0 or (next_start and next_start.start() < end):
            stop = next_start.start() if next_start else len(text)
            problems.add(path, line_of(found.start()), "an <Event> without its </Event>")
            position = stop
            continue
        end += len(_EVENT_END)
        raw = text[found.start():end]
        try:
            root = parse_xml(raw)
        except ElementTree.ParseError as error:
            problems.add(path, line_of(found.start()), "XML does not parse: %s" % error)
            position = end
            continue
        record = event_from_xml(root)
        record["_raw"] = raw
        yield finish(record)
        position = end


# ---------------------------------------------------------------- JSON lines

_DATA_CONTAINERS = (("winlog", "event_data"), ("event_data",), ("EventData",), ("winlog", "user_data"),
                    ("user_data",))
_HOST_FIELDS = ("Hostname", "winlog.computer_name", "computer_name", "host.name", "agent.hostname", "beat.hostname")
_TIME_FIELDS = ("@timestamp", "EventTime", "timestamp", "TimeGenerated", "event.created")
_CODE_FIELDS = ("EventID", "winlog.event_id", "event_id", "event.code", "EventCode")


def _flatten(value, prefix, out):
    """Field names for nested JSON: keys joined with dots (as Splunk names them); an array of
    scalars is a multivalue field of the same name, so a record written by `replay.py --output
    json` reads back unchanged; an array holding objects is kept as its JSON text."""
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(item, "%s.%s" % (prefix, key) if prefix else str(key), out)
    elif isinstance(value, list):
        scalars = [render(item) for item in value if not isinstance(item, (dict, list))]
        nested = [item for item in value if isinstance(item, (dict, list))]
        name = prefix
        if scalars and not nested:
            scalars = [item for item in scalars if item is not None]
            if scalars:
                out[name] = scalars if len(scalars) > 1 else scalars[0]
        elif value:
            out[prefix] = json.dumps(value, ensure_ascii=False)
    else:
        rendered = render(value, prefix.rsplit(".", 1)[-1])
        if rendered is not None:
            out[prefix] = rendered


def _event_data_from_string(text):
    """Data Name=... pairs of an EventData XML string (Azure WindowsEvent exports)."""
    try:
        root = parse_xml(text)
    except ElementTree.ParseError:
        return None
    fields = {}
    for element in root.iter():
        if _local(element.tag) == "Data" and element.attrib.get("Name"):
            value = _text(element)
            if value != "":
                fields[element.attrib["Name"]] = value
    return fields


def event_from_json(obj):
    """A record from one JSON object: flat NXLog/logstash, winlogbeat (event_data, winlog.*), Azure WindowsEvent."""
    record, data = {}, {}
    obj = dict(obj)
    for path in _DATA_CONTAINERS:
        holder, key = obj, path[-1]
        for part in path[:-1]:
            holder = holder.get(part) if isinstance(holder, dict) else None
        if not isinstance(holder, dict) or key not in holder:
            continue
        container = holder[key]
        if isinstance(container, dict):
            for name, value in container.items():
                rendered = render(value, name) if not isinstance(value, (dict, list)) else None
                if rendered is None and isinstance(value, (dict, list)):
                    sub = {}
                    _flatten(value, name, sub)
                    data.update(sub)
                elif rendered is not None:
                    data[name] = rendered
        elif isinstance(container, str) and container.lstrip().startswith("<"):
            parsed = _event_data_from_string(container)
            if parsed is None:
                continue
            data.update(parsed)
        else:
            continue
        holder = dict(holder)
        del holder[key]
        if len(path) == 1:
            obj = holder
        else:
            obj[path[0]] = holder
    _flatten(obj, "", record)
    for name, value in data.items():
        record.setdefault(name, value)
    code = _first(record, *_CODE_FIELDS)
    if code is not None and record.get("EventCode") in (None, ""):
        record["EventCode"] = code
    if record.get("host") not in (None, "") and any(record.get(name) not in (None, "") for name in _HOST_FIELDS[:3]):
        # A logstash/NXLog `host` is the collector, not the machine that logged the event.
        record.setdefault("orig_host", record.pop("host"))
    return finish(record, host_fields=_HOST_FIELDS, time_fields=_TIME_FIELDS)


def _concatenated_objects(text):
    """Pretty-printed JSON objects one after another (when the first line alone is not JSON), else None."""
    first = text.split("\n", 1)[0]
    try:
        json.loads(first)
        return None
    except ValueError:
        pass
    decoder, position, items = json.JSONDecoder(), 0, []
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position >= len(text):
            return items or None
        try:
            item, position = decoder.raw_decode(text, position)
        except ValueError:
            return None
        if not isinstance(item, dict):
            return None
        items.append(item)


def read_jsonl(path, text, problems):
    """Records from JSON lines (one object a line) or from one JSON array of objects."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            items = json.loads(stripped)
        except ValueError as error:
            items = None
            problems.add(path, 1, "a JSON array that does not parse: %s" % error)
        if isinstance(items, list):
            for number, item in enumerate(items, start=1):
                if isinstance(item, dict):
                    yield event_from_json(item)
                else:
                    problems.add(path, number, "array item is not a JSON object", unit="item")
            return
        if items is not None:
            return
    concatenated = _concatenated_objects(stripped)
    if concatenated is not None:
        for item in concatenated:
            yield event_from_json(item)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as error:
            problems.add(path, number, "not JSON: %s" % str(error).split(":")[0])
            continue
        if not isinstance(item, dict):
            problems.add(path, number, "not a JSON object")
            continue
        yield event_from_json(item)


# ---------------------------------------------------------------- CSV (Splunk export)

def _mv_decode(text):
    """Values of a Splunk `__mv_` cell `$a$;$b$` (`$$` is `$`); None when it is not one."""
    values, i, n = [], 0, len(text)
    while i < n:
        if text[i] != "$":
            return None
        j, value = i + 1, []
        while True:
            if j >= n:
                return None
            if text[j] == "$":
                if text[j + 1:j + 2] == "$":
                    value.append("$")
                    j += 2
                    continue
                break
            value.append(text[j])
            j += 1
        values.append("".join(value))
        i = j + 1
        if i < n:
            if text[i] != ";":
                return None
            i += 1
    return values


def read_csv(path, text, problems):
    """Records from a CSV exported from Splunk: header row; `__mv_X` cells make X multivalue.

    An empty cell is a field the event did not have. A row whose `_raw` is an
    XmlWinEventLog event and that lacks fields of it gets them from the XML.
    """
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as error:
        raise ReplayInputError("%s: the CSV header does not parse: %s" % (path, error))
    header = [name.strip() for name in header]
    multi = dict((index, name[5:]) for index, name in enumerate(header) if name.startswith("__mv_"))
    plain = [(index, name) for index, name in enumerate(header) if not name.startswith("__mv_")]
    while True:
        line = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            problems.add(path, line, "CSV does not parse: %s" % error)
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            problems.add(path, line, "%d cells, the header has %d" % (len(row), len(header)))
            continue
        record = {}
        for index, name in plain:
            if row[index] != "":
                record[name] = row[index]
        for index, name in multi.items():
            if row[index]:
                values = _mv_decode(row[index])
                if values is None:
                    problems.add(path, line, "bad multivalue cell in __mv_%s" % name)
                    record = None
                    break
                record[name] = values if len(values) > 1 else values[0]
        if record is None:
            continue
        raw = record.get("_raw")
        if isinstance(raw, str) and raw.lstrip().startswith("<Event") and "EventCode" not in record:
            try:
                for name, value in event_from_xml(parse_xml(raw.strip())).items():
                    record.setdefault(name, value)
            except ElementTree.ParseError as error:
                problems.add(path, line, "_raw is XML that does not parse: %s" % error)
                continue
        yield finish(record)


# ---------------------------------------------------------------- EVTX

def check_evtx(path, data, problems):
    """Structural checks the `evtx` parser does not make: size, magic, whole chunks, chunk checksums.

    A file cut short (copied while written, or a partial download) is refused:
    EVTX files are a 4096-byte header and whole 64 KiB chunks. A chunk whose
    header or record checksum is wrong is reported as a warning (Windows may not
    have flushed the last chunk of a live log); its records are still parsed.
    """
    if len(data) < EVTX_HEADER_SIZE:
        raise ReplayInputError("%s: truncated EVTX file: %d bytes, shorter than the %d-byte file header"
                               % (path, len(data), EVTX_HEADER_SIZE))
    if zlib.crc32(data[:120]) & 0xFFFFFFFF != struct.unpack_from("<I", data, 124)[0]:
        raise ReplayInputError("%s: corrupt EVTX file: the file header checksum does not match" % path)
    header_chunks = struct.unpack_from("<H", data, 42)[0]
    whole, extra = divmod(len(data) - EVTX_HEADER_SIZE, EVTX_CHUNK_SIZE)
    if extra:
        raise ReplayInputError("%s: truncated EVTX file: %d bytes after the last whole 64 KiB chunk (chunk %d is cut)"
                               % (path, extra, whole + 1))
    if whole < header_chunks:
        raise ReplayInputError("%s: truncated EVTX file: the header says %d chunks, the file holds %d"
                               % (path, header_chunks, whole))
    for number in range(whole):
        start = EVTX_HEADER_SIZE + number * EVTX_CHUNK_SIZE
        chunk = data[start:start + EVTX_CHUNK_SIZE]
        if not chunk.startswith(EVTX_CHUNK_MAGIC):
            if chunk.strip(b"\x00"):
                raise ReplayInputError("%s: corrupt EVTX file: chunk %d has no ElfChnk signature" % (path, number + 1))
            continue
        header_crc = zlib.crc32(chunk[128:512], zlib.crc32(chunk[:120])) & 0xFFFFFFFF
        free = struct.unpack_from("<I", chunk, 48)[0]
        data_crc = zlib.crc32(chunk[512:free]) & 0xFFFFFFFF if 512 <= free <= EVTX_CHUNK_SIZE else None
        if header_crc != struct.unpack_from("<I", chunk, 124)[0] or data_crc != struct.unpack_from("<I", chunk, 52)[0]:
            problems.warn("%s: EVTX chunk %d has a wrong checksum; its records were parsed anyway" % (path, number + 1))


def _evtx_value(value, name=""):
    """An evtx-parser JSON value as Windows renders it: `#text` of an element, lists as multivalue."""
    if isinstance(value, dict):
        if "#text" in value:
            return _evtx_value(value["#text"], name)
        return None
    if isinstance(value, list):
        values = [_evtx_value(item, name) for item in value]
        values = [item for item in values if item not in (None, "")]
        return values or None
    return render(value, name)


def event_from_evtx_json(document):
    """A record from the `evtx` parser's JSON of one event (the `data` of records_json())."""
    event = document.get("Event", document) if isinstance(document, dict) else {}
    record = {}

    def put(name, value):
        value = _evtx_value(value, name)
        if value not in (None, "", []):
            record[name] = value

    def attrs(value):
        return (value or {}).get("#attributes", {}) if isinstance(value, dict) else {}

    system = event.get("System") or {}
    for name, value in system.items():
        if name == "Provider":
            put("ProviderName", attrs(value).get("Name"))
            put("ProviderGuid", attrs(value).get("Guid"))
            put("EventSourceName", attrs(value).get("EventSourceName"))
        elif name == "TimeCreated":
            put("TimeCreated", attrs(value).get("SystemTime"))
        elif name == "Execution":
            put("ProcessID", attrs(value).get("ProcessID"))
            put("ThreadID", attrs(value).get("ThreadID"))
        elif name == "Security":
            put("UserID", attrs(value).get("UserID"))
        elif name == "Correlation":
            put("ActivityID", attrs(value).get("ActivityID"))
            put("RelatedActivityID", attrs(value).get("RelatedActivityID"))
        elif name != "#attributes":
            put(name, value)
    for section in ("EventData", "UserData"):
        data = event.get(section)
        if not isinstance(data, dict):
            continue
        if section == "UserData" and len(data) == 1 and isinstance(next(iter(data.values())), dict):
            data = next(iter(data.values()))
        for name, value in data.items():
            if name == "#attributes":
                continue
            if isinstance(value, dict) and "#text" not in value:
                for sub, item in value.items():
                    if sub != "#attributes":
                        put(sub, item)
            else:
                put(name, value)
    if "EventID" in record:
        record["EventCode"] = record["EventID"]
    return finish(record)


def read_evtx(path, data, problems):
    """Records of an EVTX file through the `evtx` package's PyEvtxParser (records as JSON)."""
    try:
        import evtx
    except ImportError:
        raise ReplayInputError("%s: reading EVTX needs the `evtx` package (pip install -r requirements-dev.txt, "
                               "or `make venv`)" % path)
    check_evtx(path, data, problems)
    try:
        parser = evtx.PyEvtxParser(io.BytesIO(data))
        records = parser.records_json()
    except (OSError, RuntimeError, ValueError) as error:
        raise ReplayInputError("%s: corrupt EVTX file: %s" % (path, _one_line(error)))
    while True:
        try:
            item = next(records)
        except StopIteration:
            return
        except (OSError, RuntimeError, ValueError) as error:
            raise ReplayInputError("%s: corrupt EVTX file: %s" % (path, _one_line(error)))
        try:
            document = json.loads(item["data"])
        except (KeyError, TypeError, ValueError) as error:
            problems.add(path, item.get("event_record_id", "?") if isinstance(item, dict) else "?",
                         "the parser's JSON does not load: %s" % error, unit="record")
            continue
        yield event_from_evtx_json(document)


def _one_line(error):
    return " ".join(str(error).split())[:300]


# ---------------------------------------------------------------- dispatch

def read_file(path, problems, fmt="auto"):
    """(format, iterator of records) for one file; ReplayInputError when it cannot be read at all."""
    data = open_bytes(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise ReplayInputError("unknown format %r (use one of: auto, %s)" % (fmt, ", ".join(FORMATS)))
    if not data.strip():
        problems.warn("%s: the file is empty" % path)
        return fmt if fmt != "auto" else "empty", iter(())
    detected = sniff(path, data) if fmt == "auto" else fmt
    if detected == "evtx":
        if not data.startswith(EVTX_MAGIC):
            raise ReplayInputError("%s: not an EVTX file (no ElfFile signature)" % path)
        return detected, read_evtx(path, data, problems)
    text = decode_text(path, data)
    reader = {"xml": read_xml, "jsonl": read_jsonl, "csv": read_csv}[detected]
    return detected, reader(path, text, problems)
