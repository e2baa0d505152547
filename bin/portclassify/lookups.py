"""Load and validate the app's lookup files: every list the command uses lives in them.

The file names here must match the filename of each [classifyport_*] stanza
in default/transforms.conf (tests check it). The command reads only these
files from the app's own lookups/ folder, never a path from a search.
"""
import datetime
import ipaddress
import os
import re

from .allowlist import AllowRule, PatternProblem
from .csvfile import LookupProblem, read_rows
from .networks import NetworkSet
from .ports import PortSet, parse_port_spec

PROCESSES = "classifyport_processes.csv"
PORTS = "classifyport_ports.csv"
INTERNAL_NETWORKS = "classifyport_internal_networks.csv"
ALLOWLIST = "classifyport_allowlist.csv"
FIELD_PROFILES = "classifyport_field_profiles.csv"
TECHNIQUES = "classifyport_techniques.csv"
RISK = "classifyport_risk.csv"

# Labels in precedence order: an event whose names match several categories
# takes the first, as the original search's case() did.
CATEGORIES = ("ScriptInterpreter", "LOLBin", "UnusualSystemProcess")
ROLES = ("image", "original_file_name", "port", "dest", "direction", "host", "user")
TECHNIQUE_MATCHES = ("label", "process", "port", "deprecated_alias")
DESTINATIONS = ("external", "internal")
_TECHNIQUE_ID = re.compile(r"T[0-9]{4}(\.[0-9]{3})?\Z")
REQUIRED_ROLES = ("image", "port")
# Not in a process name: characters Windows forbids in file names (a glob's * and ? among them:
# the processes lookup takes exact names) and control characters.
_NOT_IN_NAME = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')


def lookups_dir(app_root):
    return os.path.join(app_root, "lookups")


def _rows(app_root, filename, required):
    return read_rows(os.path.join(lookups_dir(app_root), filename), filename, required)


def load_processes(app_root):
    """Return {lower-case process name: category index}."""
    names, first_row = {}, {}
    for number, row in _rows(app_root, PROCESSES, ("process", "category")):
        name = row["process"].lower()
        if not name:
            raise LookupProblem(PROCESSES, number, "empty process name")
        if "\\" in name or "/" in name:
            raise LookupProblem(PROCESSES, number, "process %r must be a file name, not a path" % row["process"])
        if len(name) > 255:
            raise LookupProblem(PROCESSES, number, "process %r... is %d characters long: a file name has at "
                                                   "most 255" % (row["process"][:40], len(name)))
        bad = _NOT_IN_NAME.search(name)
        if bad:
            raise LookupProblem(PROCESSES, number, "process %r is not a file name: it holds %r (the lookup takes "
                                                   "exact names: no * or ? pattern, none of < > : \" |, no control "
                                                   "character)" % (row["process"], bad.group()))
        category = row["category"]
        matches = [index for index, known in enumerate(CATEGORIES) if known.lower() == category.lower()]
        if not matches:
            raise LookupProblem(PROCESSES, number, "unknown category %r (allowed: %s)" % (category, ", ".join(CATEGORIES)))
        if name in names:
            previous = CATEGORIES[names[name]]
            detail = "" if names[name] == matches[0] else " with two categories (%s, %s)" % (previous, CATEGORIES[matches[0]])
            raise LookupProblem(PROCESSES, number, "process %r is listed twice (rows %d and %d)%s"
                                % (row["process"], first_row[name], number, detail))
        names[name] = matches[0]
        first_row[name] = number
    if not names:
        raise LookupProblem(PROCESSES, None, "lists no process (it has a header and no row)")
    return names


def load_ports(app_root):
    """Return the PortSet of the ports lookup (a port or a range N-M per row)."""
    ranges = []
    for number, row in _rows(app_root, PORTS, ("port",)):
        try:
            ranges.extend(parse_port_spec(row["port"]))
        except ValueError as error:
            raise LookupProblem(PORTS, number, "bad port: %s" % error)
    if not ranges:
        raise LookupProblem(PORTS, None, "lists no port")
    return PortSet(ranges)


def _network(filename, number, text):
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise LookupProblem(filename, number, "bad CIDR %r (expected e.g. 10.0.0.0/8 or fc00::/7)" % text)


def load_internal_networks(app_root):
    networks = [_network(INTERNAL_NETWORKS, number, row["cidr"])
                for number, row in _rows(app_root, INTERNAL_NETWORKS, ("cidr",))]
    return NetworkSet(networks)


def load_profiles(app_root):
    """Return {profile: {role: (fields in priority order, inbound values)}}."""
    entries = {}
    for number, row in _rows(app_root, FIELD_PROFILES, ("profile", "role", "priority", "field", "inbound_value")):
        profile, role, field = row["profile"].lower(), row["role"].lower(), row["field"]
        if not profile:
            raise LookupProblem(FIELD_PROFILES, number, "empty profile name")
        if role not in ROLES:
            raise LookupProblem(FIELD_PROFILES, number, "unknown role %r (allowed: %s)" % (row["role"], ", ".join(ROLES)))
        if not field:
            raise LookupProblem(FIELD_PROFILES, number, "empty field name")
        try:
            priority = int(row["priority"])
        except ValueError:
            raise LookupProblem(FIELD_PROFILES, number, "priority %r is not a whole number" % row["priority"])
        entries.setdefault(profile, {}).setdefault(role, []).append((priority, field, row["inbound_value"]))
    profiles = {}
    for profile, roles in entries.items():
        for role in REQUIRED_ROLES:
            if role not in roles:
                raise LookupProblem(FIELD_PROFILES, None, "profile %r has no %r field" % (profile, role))
        profiles[profile] = {
            role: (tuple(field for _, field, _ in sorted(rows)),
                   frozenset(value.lower() for _, _, value in rows if value))
            for role, rows in roles.items()
        }
    if not profiles:
        raise LookupProblem(FIELD_PROFILES, None, "defines no profile")
    return profiles


def _parse_date(text):
    """YYYY-MM-DD only: date.fromisoformat accepts more forms from Python 3.11 on, and
    the same lookup must mean the same thing on Splunk's Python 3.9 and 3.13."""
    if len(text) != 10 or not re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z", text):
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def load_allowlist(app_root, today):
    """Return (active rules, numbers of expired rows)."""
    rules, expired = [], []
    required = ("process", "dest_cidr", "port", "host", "user", "reason", "expires")
    # A long list repeats its CIDRs and ports: parse each text once.
    networks, port_specs = {}, {}
    for number, row in _rows(app_root, ALLOWLIST, required):
        if not (row["process"] or row["dest_cidr"] or row["port"] or row["host"] or row["user"]):
            raise LookupProblem(ALLOWLIST, number, "row matches every event: fill in at least one of process, dest_cidr, port, host, user")
        network = None
        if row["dest_cidr"]:
            network = networks.get(row["dest_cidr"])
            if network is None:
                network = networks[row["dest_cidr"]] = _network(ALLOWLIST, number, row["dest_cidr"])
        ports = None
        if row["port"]:
            ports = port_specs.get(row["port"])
            if ports is None:
                try:
                    # Ranges, not a PortSet: that would take 64 KB per row.
                    ports = port_specs[row["port"]] = tuple(parse_port_spec(row["port"]))
                except ValueError as error:
                    raise LookupProblem(ALLOWLIST, number, "bad port: %s" % error)
        if row["expires"]:
            until = _parse_date(row["expires"])
            if until is None:
                raise LookupProblem(ALLOWLIST, number, "expires %r is not a date (expected YYYY-MM-DD)" % row["expires"])
            if until < today:
                expired.append(number)
                continue
        try:
            rules.append(AllowRule(number, row["process"], network, ports, row["host"], row["user"], row["reason"]))
        except PatternProblem as error:
            raise LookupProblem(ALLOWLIST, number, str(error))
    return rules, expired


def _category(filename, number, text):
    for index, known in enumerate(CATEGORIES):
        if known.lower() == text.lower():
            return index
    raise LookupProblem(filename, number, "unknown label %r (allowed: %s)" % (text, ", ".join(CATEGORIES)))


class Techniques:
    """ATT&CK technique IDs for a labelled event, from the techniques lookup."""

    def __init__(self, by_label, by_process, by_port, aliases):
        self.by_label, self.by_process, self.by_port, self.aliases = by_label, by_process, by_port, aliases

    def for_event(self, category, process, port):
        """Label techniques, then the process's, then the port's; each ID once."""
        found = []
        for group in (self.by_label.get(category, ()), self.by_process.get(process, ()), self.by_port.get(port, ())):
            for technique in group:
                if technique not in found:
                    found.append(technique)
        return found


def load_techniques(app_root):
    by_label, by_process, by_port, aliases = {}, {}, {}, {}
    for number, row in _rows(app_root, TECHNIQUES, ("match", "value", "technique_id")):
        match, value, technique = row["match"].lower(), row["value"], row["technique_id"].upper()
        if not _TECHNIQUE_ID.match(technique):
            raise LookupProblem(TECHNIQUES, number, "technique_id %r is not an ATT&CK ID like T1071 or T1071.001"
                                % row["technique_id"])
        if match == "label":
            key, table = _category(TECHNIQUES, number, value), by_label
        elif match == "process":
            key, table = value.lower(), by_process
        elif match == "port":
            try:
                ranges = parse_port_spec(value)
            except ValueError as error:
                raise LookupProblem(TECHNIQUES, number, "bad port: %s" % error)
            for low, high in ranges:
                for port in range(low, high + 1):
                    by_port.setdefault(port, []).append(technique)
            continue
        elif match == "deprecated_alias":
            if not _TECHNIQUE_ID.match(value.upper()):
                raise LookupProblem(TECHNIQUES, number, "deprecated_alias %r is not an ATT&CK ID" % value)
            key, table = value.upper(), aliases
        else:
            raise LookupProblem(TECHNIQUES, number, "unknown match %r (allowed: %s)"
                                % (row["match"], ", ".join(TECHNIQUE_MATCHES)))
        table.setdefault(key, []).append(technique)
    return Techniques(by_label, by_process, by_port, aliases)


def load_risk(app_root):
    """Return {(category index, is_internal): score as text}; every label and destination needs a row."""
    scores = {}
    for number, row in _rows(app_root, RISK, ("label", "destination", "risk_score")):
        category = _category(RISK, number, row["label"])
        destination = row["destination"].lower()
        if destination not in DESTINATIONS:
            raise LookupProblem(RISK, number, "destination %r must be internal or external" % row["destination"])
        score = row["risk_score"]
        if not (score.isascii() and score.isdigit() and 0 <= int(score) <= 100):
            raise LookupProblem(RISK, number, "risk_score %r is not a whole number from 0 to 100" % score)
        key = (category, destination == "internal")
        if key in scores:
            raise LookupProblem(RISK, number, "%s %s is scored twice" % (CATEGORIES[category], destination))
        scores[key] = str(int(score))
    for category in range(len(CATEGORIES)):
        for internal, destination in ((False, "external"), (True, "internal")):
            if (category, internal) not in scores:
                raise LookupProblem(RISK, None, "no risk_score for %s with an %s destination"
                                    % (CATEGORIES[category], destination))
    return scores
