"""IP address parsing and internal-network membership."""
import bisect
import ipaddress
import re

# A plain dotted-quad IPv4 address, the usual destination, is read without building an
# ipaddress object. [0-9], not \d (which takes other scripts' digits); no leading zero,
# which ipaddress rejects too.
_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(r"\.".join([_OCTET] * 4)).fullmatch


def parse_ip(text):
    """Return an ip_address for `text`, or None when it is not an IP address.

    Accepts Sysmon's uncompressed IPv6 ("0:0:0:0:0:0:0:1"), brackets and a zone
    index ("fe80::1%12"), and unwraps IPv4-mapped IPv6 ("::ffff:10.1.2.3") to
    the IPv4 address it carries.
    """
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    text = text.split("%", 1)[0]
    if not text or not text.isascii():
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _merged(networks):
    """(starts, ends): the networks as sorted, non-overlapping integer ranges."""
    starts, ends = [], []
    for low, high in sorted((int(net.network_address), int(net.broadcast_address)) for net in networks):
        if ends and low <= ends[-1] + 1:
            ends[-1] = max(ends[-1], high)
        else:
            starts.append(low)
            ends.append(high)
    return starts, ends


class NetworkSet:
    """The internal networks, checked per address family by binary search over merged
    ranges, so a list of thousands of networks costs what a list of ten does."""

    def __init__(self, networks):
        self.networks = tuple(networks)
        self._ranges = {version: _merged(net for net in self.networks if net.version == version)
                        for version in (4, 6)}

    def _holds(self, version, number):
        starts, ends = self._ranges[version]
        at = bisect.bisect_right(starts, number) - 1
        return at >= 0 and number <= ends[at]

    def contains(self, address):
        """Whether an ip_address (or None) is in one of the networks."""
        return address is not None and self._holds(address.version, int(address))

    def contains_text(self, text):
        """contains(parse_ip(text)), without an ip_address for a plain IPv4 address."""
        found = _DOTTED_QUAD(text)
        if found is not None:
            a, b, c, d = found.groups()
            return self._holds(4, int(a) << 24 | int(b) << 16 | int(c) << 8 | int(d))
        return self.contains(parse_ip(text))
