"""The splunkd side of Search Command Protocol v2 (chunked), for tests, the demo and replays.

splunkd starts the command with no arguments, sends a `getinfo` chunk (the
search's arguments in searchinfo.args), reads one reply, then sends `execute`
chunks of CSV, one reply per request, ending with `finished: true`. Each chunk
is `chunked 1.0,<metadata bytes>,<body bytes>\\n` + JSON metadata + body.
Multivalue fields travel as a `__mv_<name>` column: `$a$;$b$` with `$` doubled.
"""
import csv
import io
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = os.path.join(ROOT, "bin", "classifyport.py")


def encode_chunk(metadata, body=b""):
    meta = json.dumps(metadata, separators=(",", ":")).encode("utf-8")
    if isinstance(body, str):
        body = body.encode("utf-8")
    return b"chunked 1.0,%d,%d\n" % (len(meta), len(body)) + meta + body


def getinfo_metadata(args, app_root=ROOT, dispatch_dir=None, search="| classifyport", **extra):
    """The getinfo request splunkd sends, shaped like the recorded transcripts."""
    from urllib.parse import quote
    info = {
        "args": list(args), "raw_args": list(args),
        "dispatch_dir": dispatch_dir or os.path.join(app_root, "build", "dispatch"),
        "earliest_time": "0", "latest_time": "0",
        "search": quote(search), "session_key": "test-session-key",
        "splunkd_uri": "https://127.0.0.1:8089", "splunk_version": "9.3.0",
        "app": "classifyport", "owner": "admin", "username": "admin", "sid": "1700000000.1",
        "command": "classifyport", "maxresultrows": 50000,
    }
    info.update(extra)
    return {"action": "getinfo", "preview": False, "searchinfo": info}


def _mv_encode(values):
    return "$" + "$;$".join(str(v).replace("$", "$$") for v in values) + "$"


def encode_records(records, fieldnames=None):
    """CSV body as splunkd writes it: plain columns, then a __mv_ column per multivalue field."""
    if not records:
        return ""
    if fieldnames is None:
        fieldnames = []
        for record in records:
            for name in record:
                if name not in fieldnames:
                    fieldnames.append(name)
    mv_names = [name for name in fieldnames
                if any(isinstance(record.get(name), (list, tuple)) for record in records)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(list(fieldnames) + ["__mv_" + name for name in mv_names])
    for record in records:
        row = []
        for name in fieldnames:
            value = record.get(name, "")
            row.append("\n".join(map(str, value)) if isinstance(value, (list, tuple)) else value)
        for name in mv_names:
            value = record.get(name, "")
            row.append(_mv_encode(value) if isinstance(value, (list, tuple)) and len(value) > 1 else "")
        writer.writerow(row)
    return out.getvalue()


def build_input(args, chunks, **getinfo_extra):
    """Bytes splunkd would write: getinfo, one execute chunk per record list, then an empty final chunk."""
    data = [encode_chunk(getinfo_metadata(args, **getinfo_extra))]
    for records in chunks:
        data.append(encode_chunk({"action": "execute", "finished": False}, encode_records(records)))
    data.append(encode_chunk({"action": "execute", "finished": True}))
    return b"".join(data)


def read_chunks(data):
    """Split a reply stream into [(metadata dict, body str)], skipping blank lines between chunks."""
    chunks, stream = [], io.BytesIO(data)
    while True:
        header = stream.readline()
        while header in (b"\n", b"\r\n"):
            header = stream.readline()
        if not header:
            return chunks
        parts = header.decode("ascii").strip().split(",")
        if len(parts) != 3 or not parts[0].startswith("chunked 1.0"):
            raise ValueError("bad chunk header %r" % header)
        meta_len, body_len = int(parts[1]), int(parts[2])
        meta = stream.read(meta_len)
        body = stream.read(body_len)
        if len(meta) != meta_len or len(body) != body_len:
            raise ValueError("truncated chunk after header %r" % header)
        chunks.append((json.loads(meta.decode("utf-8")) if meta_len else {}, body.decode("utf-8")))


def _mv_decode(text):
    values, i = [], 0
    while i < len(text):
        assert text[i] == "$", text
        j, value = i + 1, []
        while True:
            if text[j] == "$":
                if j + 1 < len(text) and text[j + 1] == "$":
                    value.append("$")
                    j += 2
                    continue
                break
            value.append(text[j])
            j += 1
        values.append("".join(value))
        i = j + 1
        if i < len(text):
            assert text[i] == ";", text
            i += 1
    return values


def decode_records(body):
    """Records from a CSV body; a non-empty __mv_ cell replaces its field with the list of values."""
    if not body:
        return []
    reader = csv.reader(io.StringIO(body, newline=""))
    header = next(reader)
    records = []
    for row in reader:
        record = {}
        for name, value in zip(header, row):
            if name.startswith("__mv_"):
                if value:
                    record[name[5:]] = _mv_decode(value)
            elif name not in record:
                record[name] = value
        records.append(record)
    return records


class Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr
        self.chunks = read_chunks(stdout)
        self.getinfo = self.chunks[0][0] if self.chunks else {}
        self.replies = [(meta, decode_records(body)) for meta, body in self.chunks[1:]]
        self.records = [record for _, records in self.replies for record in records]

    def messages(self, level=None):
        found = []
        for meta, _ in self.chunks:
            for msg_level, text in meta.get("inspector", {}).get("messages", []):
                if level is None or msg_level == level:
                    found.append(text)
        return found


def run(args=(), chunks=(), python=None, timeout=120, stdin=None, command=COMMAND, **getinfo_extra):
    """Run the command as splunkd does and return its parsed Result."""
    if stdin is None:
        stdin = build_input(args, chunks, **getinfo_extra)
    proc = subprocess.run([python or sys.executable, command], input=stdin,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                          cwd=os.path.dirname(command))
    return Result(proc.returncode, proc.stdout, proc.stderr)
