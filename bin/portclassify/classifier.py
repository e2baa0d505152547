"""Classify network-connection events: the per-record work of `| classifyport`."""
import datetime

from . import lookups
from .allowlist import Allowlist
from .bounded import remember
from .networks import ip_number
from .ports import PortSet, parse_port, parse_port_spec

# Output fields, in the order they are appended to each record. The first five
# and the label keep the original SPL search's names so its dashboards work.
OUTPUT_FIELDS = (
    "ImageBasename", "DestPort", "IsScriptInterpreter", "IsLOLBin", "IsUnusualSystem",
    "IsInternal", "SuspicionLabel", "Allowlisted", "AllowlistReason",
    "MatchedOn", "mitre_technique_id", "risk_score",
)
MODES = ("filter", "annotate")
DIRECTIONS = ("outbound", "any")

_FLAGS = (("1", "0", "0"), ("0", "1", "0"), ("0", "0", "1"))


def basename(image):
    """The last path component after a backslash or slash, case kept."""
    return image[max(image.rfind("\\"), image.rfind("/")) + 1:]


def _first(value):
    """A multivalue field classifies by its first value; the record keeps them all."""
    if value.__class__ is list:
        return value[0] if value else ""
    return value if value is not None else ""


def unlabelled(base, dest_port, internal):
    """The output values of an event whose process is not listed (it is kept in annotate mode)."""
    return (base, dest_port, "0", "0", "0", internal, "", "0", "", "", "", "")


class Settings:
    """Everything the command decided at getinfo time, loaded from the lookups."""

    def __init__(self, app_root, profile="sysmon", mode="filter", direction="outbound",
                 use_allowlist=True, ports=None, image=None, port=None, dest=None, today=None):
        profiles = lookups.load_profiles(app_root)
        profile = profile.lower()
        if profile not in profiles:
            raise ValueError("profile=%s is not a profile; allowed values: %s" % (profile, ", ".join(sorted(profiles))))
        if mode not in MODES:
            raise ValueError("mode=%s is not a mode; allowed values: %s" % (mode, ", ".join(MODES)))
        if direction not in DIRECTIONS:
            raise ValueError("direction=%s is not allowed; allowed values: %s" % (direction, ", ".join(DIRECTIONS)))
        roles = profiles[profile]
        overrides = {"image": image, "port": port, "dest": dest}

        def fields(role):
            if overrides.get(role):
                return (overrides[role],)
            return roles.get(role, ((), frozenset()))[0]

        self.profile, self.mode, self.direction = profile, mode, direction
        self.image_fields, self.port_fields, self.dest_fields = fields("image"), fields("port"), fields("dest")
        self.host_fields, self.user_fields = fields("host"), fields("user")
        self.original_fields = fields("original_file_name")
        self.direction_fields, self.inbound_values = roles.get("direction", ((), frozenset()))
        self.port_spec = PortSet(parse_port_spec(ports)) if ports else None
        self.app_root, self.use_allowlist, self.today = app_root, use_allowlist, today
        self.loaded = False

    def load(self):
        """Load the lists. Kept out of __init__ so the getinfo reply (options and profile
        checked) does not wait for them; the command calls it on the first data chunk."""
        if not self.loaded:
            app_root = self.app_root
            self.processes = lookups.load_processes(app_root)
            self.ports = self.port_spec or lookups.load_ports(app_root)
            self.internal = lookups.load_internal_networks(app_root)
            self.techniques = lookups.load_techniques(app_root)
            self.risk = lookups.load_risk(app_root)
            self.allowlist, self.expired_rows = Allowlist(()), []
            if self.use_allowlist:
                today = self.today or datetime.datetime.now(datetime.timezone.utc).date()
                rules, self.expired_rows = lookups.load_allowlist(app_root, today)
                self.allowlist = Allowlist(rules)
            self.loaded = True
        return self


class Classifier:
    """Adds OUTPUT_FIELDS to records; in filter mode yields only the labelled ones.

    Counts, per needed field, the events that lacked it (`missing`), so the
    command can warn once per field at the end of the search.
    """

    def __init__(self, settings):
        self.settings = settings.load()
        self.missing = {}
        self._images, self._dests, self._techniques = {}, {}, {}

    # What one image, destination or port value yields, uncached; _image and _internal cache it
    # (bounded). portclassify.csvchunk keeps its own caches, by CSV cell, over the uncached ones.

    def image_entry(self, image):
        """(basename, category index or None) of an image path."""
        base = basename(image)
        return base, self.settings.processes.get(base.lower())

    def internal(self, dest):
        """"1" when `dest` is an address in the internal networks, else "0"."""
        return "1" if self.settings.internal.contains_text(dest) else "0"

    @staticmethod
    def port_entry(text):
        """(port number or None, DestPort text) of a port value."""
        port = parse_port(text)
        return port, "" if port is None else str(port)

    def _image(self, image):
        entry = self._images.get(image)
        return entry if entry is not None else remember(self._images, image, self.image_entry(image))

    def _internal(self, dest):
        entry = self._dests.get(dest)
        return entry if entry is not None else remember(self._dests, dest, self.internal(dest))

    def _technique_ids(self, category, name, port):
        key = (category, name, port)
        found = self._techniques.get(key)
        if found is None:
            found = self.settings.techniques.for_event(category, name, port)
            found = remember(self._techniques, key, found[0] if len(found) == 1 else (found or ""))
        return found

    def note_missing(self, fields):
        key = fields[0] if len(fields) == 1 else " or ".join(fields)
        self.missing[key] = self.missing.get(key, 0) + 1

    def decide(self, image, image_field, original, original_field, port_text, dest, lazy):
        """The output values for one event, in OUTPUT_FIELDS order, or None to drop it.

        `image`/`original` are the process name values and the fields they came
        from; `lazy(role)` returns the direction, host or user value, fetched only
        for events that would be labelled.
        """
        settings = self.settings
        base, category = self._image(image) if image else ("", None)
        matched_name, matched_on = base, image_field
        if original:
            # A renamed binary keeps the name it was built with in its version resource:
            # classify by that name when the image name is unlisted or ranks lower.
            original_name, original_category = self._image(original)
            if original_category is not None and (category is None or original_category < category):
                matched_name, category, matched_on = original_name, original_category, original_field
        if category is None and settings.mode != "annotate":
            return None
        # Not cached: parsing a port costs what a cache lookup would, and ports are many.
        port, dest_port = self.port_entry(port_text) if port_text else (None, "")
        internal = self._internal(dest) if dest else "0"
        if category is None:
            return unlabelled(base, dest_port, internal)
        label = reason = techniques = risk = ""
        allowed = "0"
        if category is not None and port in settings.ports and (
                settings.direction == "any" or not settings.direction_fields
                or lazy("direction").strip().lower() not in settings.inbound_values):
            rule = None
            if settings.allowlist.rules:
                # Only a listed process on a listed port gets here: its address is read uncached.
                rule = settings.allowlist.match(image, base, ip_number(dest) if dest else None, port,
                                                lazy("host"), lazy("user"))
            if rule is None:
                label = lookups.CATEGORIES[category]
                techniques = self._technique_ids(category, matched_name.lower(), port)
                risk = settings.risk[category, internal == "1"]
            else:
                allowed, reason = "1", rule.reason
        elif settings.mode != "annotate":
            return None
        if not label and settings.mode != "annotate":
            return None
        flags = _FLAGS[category]
        return (base, dest_port, flags[0], flags[1], flags[2], internal, label, allowed, reason,
                matched_on, techniques, risk)

    def _lookup(self, record, fields, role):
        """(value, field) of the first non-empty field of `fields` in a dict record."""
        for field in fields:
            value = record.get(field)
            if value is not None:
                value = _first(value)
                if value:
                    return value, field
        if role:
            self.note_missing(fields)
        return "", ""

    def process(self, records):
        """Dict records in, dict records out (the SDK's record path; the command's own
        faster path over CSV chunks is portclassify.csvchunk)."""
        settings = self.settings
        lookup = self._lookup
        image_fields, port_fields, dest_fields = settings.image_fields, settings.port_fields, settings.dest_fields
        original_fields = settings.original_fields
        role_fields = {"direction": settings.direction_fields, "host": settings.host_fields,
                       "user": settings.user_fields}
        for record in records:
            image, image_field = lookup(record, image_fields, "image")
            original, original_field = lookup(record, original_fields, None) if original_fields else ("", "")
            port_text = lookup(record, port_fields, "port")[0]
            dest = lookup(record, dest_fields, None)[0]
            values = self.decide(image, image_field, original, original_field, port_text, dest,
                                 lambda role: lookup(record, role_fields[role], None)[0])
            if values is None:
                continue
            for name, value in zip(OUTPUT_FIELDS, values):
                record[name] = value
            yield record
