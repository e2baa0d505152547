"""Allowlist rules: the tuning rows that stop an event from being labelled.

Semantics (what `Allowlist.match` returns): the rule with the lowest row number whose every
filled cell matches the event; an empty cell matches anything. process, host and user are
case-insensitive fnmatch globs (`*`, `?`, `[...]`); a process containing `\\` or `/` is matched
against the whole image path, otherwise against its basename. dest_cidr matches an IP address
of the same family inside it; port is a port or ranges. (tests/test_hostile_lookups.py checks
this against a plain loop over the rows with fnmatch.fnmatchcase, on generated lists.)

Scale: the list is checked only for events that would be labelled, but a site may have tens
of thousands of rows. Each rule is filed in an index under one "key" cell, the most selective
one it has: an exact process name or path, an exact host or user, its CIDR, the literal prefix
or suffix of a glob (`LAB-*`, `*.corp.example`), a whole path component a path glob holds
(`*\\ccmcache\\*`), its port. Matching gathers only the rules whose key cell can match the
event and checks those in row order; a rule with nothing to index (`*web*`) is checked for
every candidate event. The candidates per image, host and user value are cached (bounded).
Globs are compiled once per rule; a glob whose only wildcard is `*` needs no regex at all.
"""
import fnmatch
import re

from . import bounded

_GLOB = frozenset("*?[")
# Ranges of ports this wide or wider are not expanded into the port index.
_PORT_INDEX_SPAN = 1024
# Longest process, host or user cell: far beyond any real path or name, short enough that no
# pattern is costly to analyse.
MAX_PATTERN = 2048
_BRACKET = re.compile(r"\[!?\]?[^\]]*\]")


class PatternProblem(ValueError):
    """A glob that does not mean the same thing on every Python Splunk runs (3.9 and 3.13)."""


def is_glob(text):
    return not _GLOB.isdisjoint(text)


def compile_glob(pattern):
    """`pattern` (already lower-cased) as the match method of a compiled regex: fnmatchcase semantics.

    Refuses a [...] set with a reversed range (`[z-a]`): Python 3.9 fails on it and 3.12+ matches
    nothing, so the same lookup would behave differently across Splunk's interpreters.
    """
    for found in _BRACKET.finditer(pattern):
        body = found.group()[1:-1].lstrip("!")
        for at in range(1, len(body) - 1):
            if body[at] == "-" and body[at - 1] > body[at + 1]:
                raise PatternProblem("pattern %r has a range %s that matches nothing"
                                     % (pattern, body[at - 1:at + 2]))
    if "?" not in pattern and "[" not in pattern:
        return _StarGlob(pattern)
    translated = fnmatch.translate(pattern)
    try:
        compiled = re.compile(translated)
    except re.error as error:
        raise PatternProblem("pattern %r is not a valid glob (%s)" % (pattern, error))
    if "(?!)" in translated:
        raise PatternProblem("pattern %r has a [...] set that matches nothing" % pattern)
    return compiled.match


class _StarGlob:
    """A glob whose only wildcard is `*`, matched with string operations (no regex to compile):
    the value starts with the first literal part, ends with the last, and holds the others in
    order between them (leftmost placement is enough for `*`)."""

    __slots__ = ("head", "tail", "middle", "least")

    def __init__(self, pattern):
        parts = pattern.split("*")
        self.head, self.tail = parts[0], parts[-1]
        self.middle = tuple(part for part in parts[1:-1] if part)
        self.least = len(self.head) + len(self.tail)

    def __call__(self, value):
        """Truthy when `value` matches, like a compiled regex's match method."""
        if len(value) < self.least or not value.startswith(self.head) or not value.endswith(self.tail):
            return None
        at, end = len(self.head), len(value) - len(self.tail)
        for part in self.middle:
            at = value.find(part, at, end)
            if at < 0:
                return None
            at += len(part)
        return True


_HEAD = re.compile(r"[^*?\[]*")


def literal_prefix(pattern):
    """The characters before the first wildcard: every matching value starts with them."""
    return _HEAD.match(pattern).group()


def literal_suffix(pattern):
    """The characters after the last wildcard or set bracket: every matching value ends with them."""
    return pattern[max(pattern.rfind("*"), pattern.rfind("?"), pattern.rfind("["), pattern.rfind("]")) + 1:]


def _port_ranges(ports):
    if ports is None:
        return None
    ranges = getattr(ports, "ranges", ports)
    return tuple((int(low), int(high)) for low, high in ranges)


class AllowRule:
    """One allowlist row; an empty cell matches anything.

    `ports` is None, a list of (low, high) ranges, or an object with such a `ranges` attribute
    (a ports.PortSet). Raises PatternProblem for a glob that cannot be used.
    """

    __slots__ = ("row", "process", "process_is_path", "network", "ports", "host", "user", "reason",
                 "_process", "_host", "_user", "_net")

    def __init__(self, row, process, network, ports, host, user, reason):
        self.row = row
        self.process = process.lower()
        self.process_is_path = "\\" in process or "/" in process
        self.network, self.ports = network, _port_ranges(ports)
        self.host, self.user = host.lower(), user.lower()
        self.reason = reason
        self._process = self._matcher(self.process)
        self._host, self._user = self._matcher(self.host), self._matcher(self.user)
        if network is None:
            self._net = None
        else:
            bits = network.max_prefixlen
            mask = ((1 << network.prefixlen) - 1) << (bits - network.prefixlen)
            self._net = (network.version, int(network.network_address) & mask, mask)

    @staticmethod
    def _matcher(pattern):
        """None for an empty cell (matches anything), the text for an exact one, or a compiled glob."""
        if not pattern:
            return None
        if len(pattern) > MAX_PATTERN:
            raise PatternProblem("%r... is %d characters long; at most %d" % (pattern[:40], len(pattern), MAX_PATTERN))
        return compile_glob(pattern) if is_glob(pattern) else pattern

    def matches(self, image, basename, address, port, host, user):
        """True when every filled cell of this row matches the event (values in any case)."""
        number = None if address is None else int(address)
        version = None if address is None else address.version
        return self._check(image.lower(), basename.lower(), version, number, port, host.lower(), user.lower())

    def _check(self, image, basename, version, number, port, host, user):
        """matches() on lower-cased values, the address given as (version, int)."""
        if self._process is not None and not _fits(self._process, image if self.process_is_path else basename):
            return False
        if self.ports is not None:
            if port is None:
                return False
            for low, high in self.ports:
                if low <= port <= high:
                    break
            else:
                return False
        if self._net is not None:
            net_version, net, mask = self._net
            if version != net_version or number & mask != net:
                return False
        if self._host is not None and not _fits(self._host, host):
            return False
        if self._user is not None and not _fits(self._user, user):
            return False
        return True


def _fits(matcher, value):
    if matcher.__class__ is str:
        return matcher == value
    return matcher(value) is not None


_SEPARATORS = re.compile(r"[\\/]")
_WILDCARDS = re.compile(r"[*?\[\]]")


def whole_component(pattern):
    """The longest path component that a glob holds between two literal separators, or "".

    An image matching `*\\ccmcache\\*` holds `\\ccmcache\\`, so splitting the image at
    `\\` and `/` gives a component "ccmcache" (a wildcard may stand for separators too, which
    adds components but never removes this one).
    """
    best = ""
    for part in _WILDCARDS.split(_BRACKET.sub("*", pattern)):
        for component in _SEPARATORS.split(part)[1:-1]:
            if len(component) > len(best):
                best = component
    return best


class _TextIndex:
    """Rules keyed by one text cell: exact values, globs by their literal prefix or suffix, and
    (for image paths) globs by a whole path component they hold."""

    def __init__(self, paths=False):
        self.exact, self.prefix, self.suffix, self.component = {}, {}, {}, {}
        self.prefix_lengths = self.suffix_lengths = ()
        self.paths = paths

    def add_exact(self, value, position):
        self.exact.setdefault(value, []).append(position)

    def add_glob(self, pattern, position):
        """File a glob under its longer literal end; False when it has none."""
        prefix, suffix = literal_prefix(pattern), literal_suffix(pattern)
        if not prefix and not suffix:
            component = whole_component(pattern) if self.paths else ""
            if not component:
                return False
            self.component.setdefault(component, []).append(position)
            return True
        if len(prefix) >= len(suffix):
            self.prefix.setdefault(prefix, []).append(position)
        else:
            self.suffix.setdefault(suffix, []).append(position)
        return True

    def freeze(self):
        self.prefix_lengths = tuple(sorted({len(key) for key in self.prefix}))
        self.suffix_lengths = tuple(sorted({len(key) for key in self.suffix}))

    def candidates(self, value, found):
        """Append to `found` the position lists of rules whose key cell may match `value`."""
        hit = self.exact.get(value)
        if hit:
            found.append(hit)
        size = len(value)
        if self.prefix_lengths:
            prefix = self.prefix
            for length in self.prefix_lengths:
                if length > size:
                    break
                hit = prefix.get(value[:length])
                if hit:
                    found.append(hit)
        if self.suffix_lengths:
            suffix = self.suffix
            for length in self.suffix_lengths:
                if length > size:
                    break
                hit = suffix.get(value[size - length:])
                if hit:
                    found.append(hit)
        if self.component:
            component = self.component
            for part in set(_SEPARATORS.split(value)):
                hit = component.get(part)
                if hit:
                    found.append(hit)

    def __bool__(self):
        return bool(self.exact or self.prefix or self.suffix or self.component)


class Allowlist:
    """First matching rule by row order wins; see the module docstring for the index."""

    def __init__(self, rules):
        self.rules = tuple(sorted(rules, key=lambda rule: rule.row))
        self._base, self._path = _TextIndex(), _TextIndex(paths=True)
        self._host, self._user = _TextIndex(), _TextIndex()
        self._networks = {4: {}, 6: {}}
        self._ports = {}
        always = []
        for position, rule in enumerate(self.rules):
            if not self._file(rule, position):
                always.append(position)
        self._always = tuple(always)
        for index in (self._base, self._path, self._host, self._user):
            index.freeze()
        self._network_lengths = {version: tuple(sorted({length for length, _ in keys}, reverse=True))
                                 for version, keys in self._networks.items()}
        self._bits = {4: 32, 6: 128}
        # Candidate lists per image, host and user value seen (bounded like the classifier's caches).
        self._image_cache, self._host_cache, self._user_cache = {}, {}, {}

    def __len__(self):
        return len(self.rules)

    def _file(self, rule, position):
        """File the rule under its most selective cell; False when only a full scan can find it."""
        process_index = self._path if rule.process_is_path else self._base
        exact_process = rule.process and rule._process.__class__ is str
        if exact_process:
            process_index.add_exact(rule.process, position)
            return True
        for cell, index in ((rule._host, self._host), (rule._user, self._user)):
            if cell.__class__ is str:
                index.add_exact(cell, position)
                return True
        if rule._net is not None:
            version, net, _ = rule._net
            length = rule.network.prefixlen
            key = net >> (rule.network.max_prefixlen - length)
            self._networks[version].setdefault((length, key), []).append(position)
            return True
        for pattern, index in ((rule.process, process_index), (rule.host, self._host), (rule.user, self._user)):
            if pattern and index.add_glob(pattern, position):
                return True
        if rule.ports is not None and sum(high - low + 1 for low, high in rule.ports) < _PORT_INDEX_SPAN:
            for low, high in rule.ports:
                for port in range(low, high + 1):
                    self._ports.setdefault(port, []).append(position)
            return True
        return False

    @staticmethod
    def _remember(cache, key, compute):
        """Compute the candidate position lists for one cell value and cache them (bounded)."""
        found = []
        compute(found)
        return bounded.remember(cache, key, tuple(found), bounded.LARGE_CACHE_LIMIT)

    def match(self, image, basename, ip, port, host, user):
        """Return the matching rule with the lowest row number, or None. `ip` is the destination
        as (version, integer) (networks.ip_number), or None."""
        if not self.rules:
            return None
        key = (image, basename)
        found = self._image_cache.get(key)
        if found is None:
            found = self._remember(self._image_cache, key,
                                   lambda into: self._image_candidates(image.lower(), basename.lower(), into))
        hits = self._host_cache.get(host)
        if hits is None:
            hits = self._remember(self._host_cache, host, lambda into: self._host.candidates(host.lower(), into))
        if hits:
            found += hits
        hits = self._user_cache.get(user)
        if hits is None:
            hits = self._remember(self._user_cache, user, lambda into: self._user.candidates(user.lower(), into))
        if hits:
            found += hits
        if ip is None:
            version = number = None
        else:
            version, number = ip
            networks = self._networks[version]
            if networks:
                bits = self._bits[version]
                for length in self._network_lengths[version]:
                    hit = networks.get((length, number >> (bits - length)))
                    if hit:
                        found += (hit,)
        if port is not None and self._ports:
            hit = self._ports.get(port)
            if hit:
                found += (hit,)
        if not found:
            return None
        # Every rule is filed under one key, so the lists are disjoint; each is in row order.
        positions = found[0] if len(found) == 1 else sorted(position for hit in found for position in hit)
        rules = self.rules
        image, basename, host, user = image.lower(), basename.lower(), host.lower(), user.lower()
        for position in positions:
            rule = rules[position]
            if rule._check(image, basename, version, number, port, host, user):
                return rule
        return None

    def _image_candidates(self, image, basename, found):
        if self._always:
            found.append(self._always)
        self._base.candidates(basename, found)
        if self._path:
            self._path.candidates(image, found)
