#!/usr/bin/env python
"""`| classifyport`: label script interpreters, LOLBins and unusual system processes
talking on commonly used ports. Splunk runs this file over Search Command Protocol v2;
the logic lives in the portclassify package beside it.
"""
import os
import sys

# splunklib and portclassify sit in bin/ because bin/ reaches the indexers in
# the knowledge bundle and lib/ does not (splunk-sdk-python issue #418).
BIN_DIR = os.path.dirname(os.path.abspath(__file__))
if BIN_DIR not in sys.path:
    sys.path.insert(0, BIN_DIR)

from splunklib.searchcommands import Configuration, Option, StreamingCommand, dispatch, validators  # noqa: E402

from portclassify.classifier import DIRECTIONS, MODES, Classifier, Settings  # noqa: E402
from portclassify.csvchunk import ChunkClassifier  # noqa: E402
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
        self._classifier = self._chunks = None

    def _start(self):
        try:
            self._classifier = Classifier(self._settings)
        except LookupProblem as problem:
            self._fail("classifyport cannot use its lookup %s" % problem)
        self._chunks = ChunkClassifier(self._classifier)
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


def _explain(item, error):
    validator = item.validator
    if isinstance(validator, validators.Set):
        return "allowed values are %s" % ", ".join(sorted(validator.membership))
    if isinstance(validator, validators.Boolean):
        return "expected true or false (t, f, 1, 0)"
    return str(error)


if __name__ == "__main__":
    dispatch(ClassifyPortCommand, sys.argv, sys.stdin, sys.stdout, __name__)
