"""Load and validate the app's lookup files: every list the command uses lives in them.

The file names here must match the filename of each [classifyport_*] stanza
in default/transforms.conf (tests check it). The command reads only these
files from the app's own lookups/ folder, never a path from a search.
"""
import datetime
import ipaddress
import os
import re

from .allowlist import AllowRule
from .csvfile import LookupProblem, read_rows
from .networks import NetworkSet
from .ports import PortSet, parse_port_spec

PROCESSES = "classifyport_processes.csv"
PORTS = "classifyport_ports.csv"
INTERNAL_NETWORKS = "classifyport_internal_networks.csv"
ALLOWLIST = "classifyport_allowlist.csv"
FIELD_PROFILES = "classifyport_field_profiles.csv"

# Labels in precedence order: an event whose names match several categories
# takes the first, as the original search's case() did.
CATEGORIES = ("ScriptInterpreter", "LOLBin", "UnusualSystemProcess")
ROLES = ("image", "port", "dest", "direction", "host", "user")
REQUIRED_ROLES = ("image", "port")


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
        raise LookupProblem(PROCESSES, None, "lists no process")
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
    for number, row in _rows(app_root, ALLOWLIST, required):
        if not any(row[name] for name in ("process", "dest_cidr", "port", "host", "user")):
            raise LookupProblem(ALLOWLIST, number, "row matches every event: fill in at least one of process, dest_cidr, port, host, user")
        network = _network(ALLOWLIST, number, row["dest_cidr"]) if row["dest_cidr"] else None
        ports = None
        if row["port"]:
            try:
                ports = PortSet(parse_port_spec(row["port"]))
            except ValueError as error:
                raise LookupProblem(ALLOWLIST, number, "bad port: %s" % error)
        if row["expires"]:
            until = _parse_date(row["expires"])
            if until is None:
                raise LookupProblem(ALLOWLIST, number, "expires %r is not a date (expected YYYY-MM-DD)" % row["expires"])
            if until < today:
                expired.append(number)
                continue
        rules.append(AllowRule(number, row["process"], network, ports, row["host"], row["user"], row["reason"]))
    return rules, expired
