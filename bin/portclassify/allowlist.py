"""Allowlist rules: the tuning rows that stop an event from being labelled."""
import fnmatch


class AllowRule:
    """One allowlist row; an empty cell matches anything."""

    __slots__ = ("row", "process", "process_is_path", "network", "ports", "host", "user", "reason")

    def __init__(self, row, process, network, ports, host, user, reason):
        self.row = row
        self.process = process.lower()
        self.process_is_path = "\\" in process or "/" in process
        self.network, self.ports = network, ports
        self.host, self.user = host.lower(), user.lower()
        self.reason = reason

    def matches(self, image, basename, address, port, host, user):
        if self.process and not fnmatch.fnmatchcase((image if self.process_is_path else basename).lower(), self.process):
            return False
        if self.ports is not None and port not in self.ports:
            return False
        if self.network is not None and (address is None or address.version != self.network.version
                                         or address not in self.network):
            return False
        if self.host and not fnmatch.fnmatchcase(host.lower(), self.host):
            return False
        if self.user and not fnmatch.fnmatchcase(user.lower(), self.user):
            return False
        return True


class Allowlist:
    """First matching rule wins. Rules whose process is a plain name are indexed by it."""

    _GLOB = frozenset("*?[")

    def __init__(self, rules):
        self.rules = tuple(rules)
        self._by_name, self._other = {}, []
        for rule in self.rules:
            if rule.process and not rule.process_is_path and not (self._GLOB & set(rule.process)):
                self._by_name.setdefault(rule.process, []).append(rule)
            else:
                self._other.append(rule)

    def __len__(self):
        return len(self.rules)

    def match(self, image, basename, address, port, host, user):
        """Return the matching rule with the lowest row number, or None."""
        best = None
        for rule in self._by_name.get(basename.lower(), ()):
            if rule.matches(image, basename, address, port, host, user):
                best = rule
                break
        for rule in self._other:
            if best is not None and rule.row > best.row:
                break
            if rule.matches(image, basename, address, port, host, user):
                best = rule
                break
        return best
