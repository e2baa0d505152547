#!/usr/bin/env python
"""`| classifyport`: label script interpreters, LOLBins and unusual system processes
talking on commonly used ports. Splunk runs this file over Search Command Protocol v2;
the logic lives in the portclassify package beside it.
"""
import gc
import json
import os
import re
import sys

# Write no bytecode: bin/__pycache__ would be a file written into the app at search time, and on a
# search head it lands in the knowledge bundle, changing it (a new bundle push to every indexer).
sys.dont_write_bytecode = True

# splunklib and portclassify sit in bin/ because bin/ reaches the indexers in
# the knowledge bundle and lib/ does not (splunk-sdk-python issue #418).
BIN_DIR = os.path.dirname(os.path.abspath(__file__))
if BIN_DIR not in sys.path:
    sys.path.insert(0, BIN_DIR)

from splunklib.searchcommands import Configuration, Option, StreamingCommand, dispatch, validators  # noqa: E402
from splunklib.searchcommands.internals import MetadataDecoder  # noqa: E402

from portclassify.classifier import DIRECTIONS, MODES, Classifier, Settings  # noqa: E402
from portclassify.csvchunk import ChunkClassifier, record_end  # noqa: E402
from portclassify.csvfile import LookupProblem  # noqa: E402
from portclassify.ports import parse_port_spec  # noqa: E402

APP_ROOT = os.path.dirname(BIN_DIR)


class PortList(validators.Validator):
    """Validates ports="80,443,8000-8100"."""

    def __call__(self, value):
        if value is None:
            return None
        parse_port_spec(value)
        return value

    def format(self, value):
        return value


@Configuration(distributed=True)
class ClassifyPortCommand(StreamingCommand):
    """Adds ImageBasename, DestPort, IsScriptInterpreter, IsLOLBin, IsUnusualSystem, IsInternal,
    SuspicionLabel, Allowlisted, AllowlistReason, MatchedOn, mitre_technique_id and risk_score
    to network-connection events (portclassify.classifier.OUTPUT_FIELDS).
    """

    profile = Option(
        doc="**Syntax:** profile=<name>. **Description:** Field names of the data: sysmon (default), cim or mde, "
            "as rows of classifyport_field_profiles.csv.",
        default="sysmon", validate=validators.Match("profile name", r"[A-Za-z0-9_-]+\Z"))
    mode = Option(
        doc="**Syntax:** mode=filter|annotate. **Description:** filter (default) returns only labelled events; "
            "annotate returns every event with the fields added.",
        default="filter", validate=validators.Set(*MODES))
    direction = Option(
        doc="**Syntax:** direction=outbound|any. **Description:** outbound (default) never labels an event the "
            "profile's direction field marks inbound; any labels both directions.",
        default="outbound", validate=validators.Set(*DIRECTIONS))
    allowlist = Option(
        doc="**Syntax:** allowlist=<bool>. **Description:** Apply classifyport_allowlist.csv (default true).",
        default=True, validate=validators.Boolean())
    ports = Option(
        doc="**Syntax:** ports=\"<port|low-high>,...\". **Description:** Ports to watch instead of "
            "classifyport_ports.csv, e.g. ports=\"80,443,8000-8100\".",
        validate=PortList())
    image = Option(
        doc="**Syntax:** image=<field>. **Description:** Field holding the process image path or name; "
            "overrides the profile.",
        validate=validators.Fieldname())
    port = Option(
        doc="**Syntax:** port=<field>. **Description:** Field holding the destination port; overrides the profile.",
        validate=validators.Fieldname())
    dest = Option(
        doc="**Syntax:** dest=<field>. **Description:** Field holding the destination IP; overrides the profile.",
        validate=validators.Fieldname())

    # The SDK's record and logging_configuration options would let a search make the
    # command write files or read a path it names; this command offers neither.
    record = None
    logging_configuration = None
    show_configuration = None

    def _protocol_v2_option_parser(self, arg):
        """Say what is wrong with an option before the SDK's terse "Illegal value"."""
        parts = arg.split("=", 1)
        if len(parts) == 2:
            name, value = parts
            item = self.options.get(name)
            if item is None:
                self.write_error("classifyport has no option %r; its options are: %s"
                                 % (name, ", ".join(sorted(self.options))))
            elif item.validator is not None:
                try:
                    item.validator(value)
                except ValueError as error:
                    self.write_error("classifyport %s=%s is not valid: %s" % (name, value, _explain(item, error)))
        return parts

    def prepare(self):
        """getinfo: check the options and the profile; the lists load with the first data chunk."""
        if self.fieldnames:
            self._fail("classifyport takes no field list (got %s); name fields with image=, port= or dest="
                       % " ".join(self.fieldnames))
        try:
            self._settings = Settings(APP_ROOT, profile=self.profile, mode=self.mode, direction=self.direction,
                                      use_allowlist=self.allowlist, ports=self.ports,
                                      image=self.image, port=self.port, dest=self.dest)
        except LookupProblem as problem:
            self._fail("classifyport cannot use its lookup %s" % problem)
        except ValueError as error:
            self._fail("classifyport %s" % error)
        except Exception as error:  # noqa: BLE001 - else the SDK sends the getinfo reply without the error
            message = "classifyport could not start: %s: %s" % (type(error).__name__, error)
            self.logger.error(message, exc_info=True)   # the traceback goes to search.log only
            self._fail(message)
        self._classifier = self._chunks = None

    def _start(self):
        try:
            self._classifier = Classifier(self._settings)
        except LookupProblem as problem:
            self._fail("classifyport cannot use its lookup %s" % problem)
        self._chunks = ChunkClassifier(self._classifier)
        # The lists live as long as the process: move them (and everything else so far) out of
        # the cyclic garbage collector's sight, so that its full passes, which the per-event
        # allocations keep triggering, do not walk a 100,000-row allowlist again each time.
        gc.freeze()
        expired = self._settings.expired_rows
        if expired:
            self.write_warning("classifyport: %d expired row(s) of classifyport_allowlist.csv were ignored (rows %s)"
                               % (len(expired), ", ".join(map(str, expired))))

    def stream(self, records):
        """The SDK's dict-per-record path; _execute_chunk_v2 below is the one the command uses."""
        if self._classifier is None:
            self._start()
        yield from self._classifier.process(records)
        self._warn_missing()

    def _execute_chunk_v2(self, process, chunk):
        # The SDK still reads and frames every chunk and writes the reply; only the
        # CSV body is handled here, without a dict per record (the SDK's per-record
        # loops cost most of its time). Relies on the pinned splunk-sdk 2.1.1
        # RecordWriter: the reply body is the text in its _buffer.
        if self._chunks is None:
            self._start()
        metadata, body = chunk
        text, count = self._chunks.process(body)
        writer = self._record_writer
        writer._buffer.write(text)
        writer._pending_record_count += count
        self._warn_missing()

    def _warn_missing(self):
        if self._finished:
            for field, count in sorted(self._classifier.missing.items()):
                self.write_warning("classifyport: %d event(s) had no %s field and were not labelled"
                                   % (count, field))

    def _fail(self, message):
        self.write_error(message)
        sys.exit(1)

    # ------------------------------------------------------------------ protocol faults
    #
    # splunklib 2.1.1 reads chunks leniently: a body shorter than its header says is
    # processed as if whole, invalid UTF-8 is replaced with U+FFFD (the data silently
    # altered), an error after the getinfo reply is never sent to splunkd (its finish()
    # sees the previous reply as flushed), the message it does send names the SDK's file
    # and line, and a closed stdout ends in a traceback. The overrides below (_read_chunk,
    # _report_unexpected_error, process) make each fault one clear ERROR reply: nothing the
    # user sent is altered and no partial chunk is answered as if it were whole.
    # tests/test_protocol_faults.py holds every case; README "Reliability" the table.

    class ProtocolFault(Exception):
        """Input from splunkd that breaks SCP v2; the message says what was wrong and where."""

    # The SDK's header pattern (SearchCommand._header), on bytes so \d and \s are ASCII only.
    _HEADER = re.compile(rb"chunked\s+1.0\s*,\s*(\d+)\s*,\s*(\d+)\s*\n")
    _HEADER_LIMIT = 4096        # a header longer than this without a line end is not a header
    _READ_PIECE = 1 << 24       # declared lengths are read in pieces: a header's absurd length costs nothing
    # searchinfo keys splunklib 2.1.1 reads without a default (its _process_protocol_v2 and
    # _map_input_header); session_key, splunkd_uri, command, maxresultrows and the rest are optional.
    _GETINFO_STRINGS = ("dispatch_dir", "search", "sid", "splunk_version")
    _GETINFO_NUMBERS = ("earliest_time", "latest_time")
    _chunks_read = 0            # chunks read from splunkd so far (the getinfo chunk is chunk 1)
    _bytes_read = 0             # bytes of splunkd's input consumed so far

    def process(self, argv=sys.argv, ifile=sys.stdin, ofile=sys.stdout, allow_empty_input=True):
        """The SDK's process(), ending quietly when splunkd closes its end of stdout (search
        cancelled or done): one line to search.log instead of a traceback, exit status 1."""
        try:
            super().process(argv, ifile, ofile, allow_empty_input)
        except BrokenPipeError:
            self.logger.error("classifyport: splunkd closed the pipe it reads replies from; stopping")
            sys.stderr.flush()
            # Not sys.exit: the interpreter's exit would flush the unread reply into the closed pipe
            # again and print that error too. Nothing else is left to do.
            os._exit(1)

    def _read_chunk(self, istream):
        """Read one chunk as the SDK's _read_chunk does, strictly: (metadata, body text), or None
        at a clean end of input between chunks. Raises ProtocolFault, naming the chunk, when the
        input ends inside a chunk, the header or metadata is malformed, the action is not the one
        the protocol expects here, or the body is not valid UTF-8 (decoded strictly: the SDK's
        errors="replace" would alter the user's data)."""
        fault = self.ProtocolFault
        number = self._chunks_read + 1
        start = self._bytes_read
        header = istream.readline(self._HEADER_LIMIT)
        self._bytes_read += len(header)
        if not header:
            if number == 1:
                raise fault("classifyport: splunkd's input ended before its getinfo chunk")
            return None
        self._chunks_read = number
        if not header.endswith(b"\n"):
            if len(header) < self._HEADER_LIMIT:
                raise fault("classifyport: splunkd's input ended inside the header of chunk %d (after %d bytes: %s)"
                            % (number, len(header), self._show(header)))
            raise fault("classifyport: splunkd's chunk %d (input byte %d) has no line end in its first %d bytes, "
                        "so no chunk header" % (number, start, self._HEADER_LIMIT))
        match = self._HEADER.match(header)
        if match is None:
            raise fault("classifyport: splunkd's chunk %d (input byte %d) has a malformed header %s; expected "
                        "'chunked 1.0,<metadata bytes>,<body bytes>'" % (number, start, self._show(header)))
        meta_length, body_length = int(match.group(1)), int(match.group(2))

        meta = self._read_exactly(istream, meta_length)
        if len(meta) < meta_length:
            raise fault("classifyport: splunkd's chunk %d ended after %d of %d metadata bytes"
                        % (number, len(meta), meta_length))
        try:
            meta_text = meta.decode("utf-8")
            plain = json.loads(meta_text)
        except UnicodeDecodeError as error:
            raise fault("classifyport: the metadata of splunkd's chunk %d is not valid UTF-8 at byte %d"
                        % (number, error.start))
        except ValueError as error:
            raise fault("classifyport: the metadata of splunkd's chunk %d is not JSON (%s at character %d)"
                        % (number, getattr(error, "msg", error), getattr(error, "pos", 0)))
        if not isinstance(plain, dict):
            raise fault("classifyport: the metadata of splunkd's chunk %d is not a JSON object" % number)
        action = plain.get("action")
        if number == 1:
            if action != "getinfo":
                raise fault("classifyport: splunkd's first chunk must be getinfo, not action %s" % self._show(action))
            self._check_getinfo(plain)
            if body_length:
                raise fault("classifyport: splunkd's getinfo chunk declares %d body bytes; it must have none"
                            % body_length)
        elif action != "execute":
            if action == "getinfo":
                raise fault("classifyport: splunkd's chunk %d is a second getinfo; getinfo comes once, first"
                            % number)
            raise fault("classifyport: splunkd's chunk %d has action %s; expected execute"
                        % (number, self._show(action)))

        body_start = self._bytes_read
        pieces, decoded, problem = [], 0, None
        for data in self._body_pieces(istream, body_length):
            if problem is None:
                try:
                    pieces.append(str(data, "utf-8"))
                except UnicodeDecodeError as error:
                    problem = (decoded + error.start, data[error.start:error.end])
                decoded += len(data)
        got = self._bytes_read - body_start
        if got < body_length:
            raise fault("classifyport: splunkd's chunk %d ended after %d of %d body bytes"
                        % (number, got, body_length))
        if problem is not None:
            at, bad = problem
            raise fault("classifyport: splunkd's chunk %d is not valid UTF-8 at byte %d of its body (byte %d of the "
                        "input: %s); classifyport stops rather than alter the data"
                        % (number, at, body_start + at, " ".join("0x%02x" % b for b in bad)))
        return MetadataDecoder().decode(meta_text), pieces

    # Bodies are read in pieces of about this many bytes, each cut after a line end with an even
    # number of quotes before it (outside any quoted cell: where a record ends), decoded one by
    # one; ChunkClassifier reads the list. A whole body would be decoded into one block per chunk,
    # and once glibc has freed one mapped block it serves blocks of that size from its heap,
    # whose free space it keeps: peak memory crept up chunk after chunk (+20% over a 10-million-
    # event search). Pieces stay under glibc's default mmap threshold (128 KiB), so they never
    # move it. The records' bytes are the same either way.
    _BODY_PIECE = 1 << 16

    def _body_pieces(self, istream, length):
        """Yield the body's bytes, up to `length` (less only at the end of input), in pieces."""
        carry, odd, got = bytearray(), 0, 0     # odd: whether carry holds an odd number of quotes
        while got < length:
            data = istream.read(min(length - got, self._BODY_PIECE))
            if not data:
                break
            got += len(data)
            self._bytes_read += len(data)
            cut = len(data) if got >= length else record_end(data, odd)
            if not cut:
                # No record ends in this piece (a record longer than a piece): keep reading.
                carry += data
                odd ^= data.count(b'"') & 1
                continue
            if carry:
                carry += memoryview(data)[:cut]
                yield carry
                carry = bytearray()
            else:
                yield data[:cut] if cut < len(data) else data
            carry += memoryview(data)[cut:]
            odd = carry.count(b'"') & 1
        if carry:
            yield carry

    def _read_exactly(self, istream, length):
        """Up to `length` bytes (fewer only at the end of input), read in bounded pieces."""
        data = istream.read(min(length, self._READ_PIECE)) if length else b""
        if len(data) < length and data:
            data = bytearray(data)
            while len(data) < length:
                piece = istream.read(min(length - len(data), self._READ_PIECE))
                if not piece:
                    break
                data += piece
        self._bytes_read += len(data)
        return data

    def _check_getinfo(self, metadata):
        """The getinfo keys splunklib needs, present and of the right type (it would fail on them
        with an AttributeError, or silently ignore args that are not a list)."""
        fault = self.ProtocolFault
        info = metadata.get("searchinfo")
        if not isinstance(info, dict):
            raise fault("classifyport: splunkd's getinfo has no searchinfo object")
        if "preview" not in metadata:
            raise fault("classifyport: splunkd's getinfo has no preview flag")
        args = info.get("args")
        if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
            raise fault("classifyport: splunkd's getinfo searchinfo.args is not a list of strings: %s"
                        % self._show(args))
        for key in self._GETINFO_STRINGS:
            if not isinstance(info.get(key), str):
                raise fault("classifyport: splunkd's getinfo searchinfo.%s is missing or not a string" % key)
        for key in self._GETINFO_NUMBERS:
            try:
                float(info[key])
            except (KeyError, TypeError, ValueError):
                raise fault("classifyport: splunkd's getinfo searchinfo.%s is missing or not a number: %s"
                            % (key, self._show(info.get(key))))

    @staticmethod
    def _show(value, limit=60):
        """A short, printable rendering of a bad header, action or key value for an error message."""
        text = repr(value[:limit] if isinstance(value, (bytes, str)) else value)
        return text if len(text) <= limit + 10 else text[:limit + 10] + "..."

    def _report_unexpected_error(self):
        """Called by the SDK in its except: blocks. Sends splunkd one clear ERROR (no traceback,
        no file or line) in the reply it is waiting for: the getinfo reply when the command has
        not answered getinfo yet, else the reply to the chunk that failed, marked finished and
        carrying no records (the SDK's finish() writes it)."""
        error_type, error, _ = sys.exc_info()
        if isinstance(error, BrokenPipeError):
            raise error                                 # splunkd is gone: nobody to answer (see process)
        if isinstance(error, self.ProtocolFault):
            message = str(error)
            self.logger.error(message)
        else:
            message = "classifyport stopped on an unexpected %s: %s" % (error_type.__name__, error)
            self.logger.error(message, exc_info=True)   # the traceback goes to search.log only
        self.write_error(message)
        writer = self._record_writer
        if self._chunks_read < 2 and not writer.is_flushed:
            # Reading or checking getinfo failed: this is the getinfo reply (type and the ERROR).
            writer.write_metadata(self._configuration)
        else:
            # Relies on the pinned splunk-sdk 2.1.1 RecordWriter (as _execute_chunk_v2 does).
            writer._buffer.seek(0)
            writer._buffer.truncate()
            writer._pending_record_count = 0
            writer.is_flushed = False


def _explain(item, error):
    validator = item.validator
    if isinstance(validator, validators.Set):
        return "allowed values are %s" % ", ".join(sorted(validator.membership))
    if isinstance(validator, validators.Boolean):
        return "expected true or false (t, f, 1, 0)"
    return str(error)


if __name__ == "__main__":
    dispatch(ClassifyPortCommand, sys.argv, sys.stdin, sys.stdout, __name__)
