"""IP address parsing and internal-network membership."""
import ipaddress


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


class NetworkSet:
    """The internal networks, checked per address family."""

    def __init__(self, networks):
        self.networks = tuple(networks)
        self._v4 = tuple(net for net in self.networks if net.version == 4)
        self._v6 = tuple(net for net in self.networks if net.version == 6)

    def contains(self, address):
        if address is None:
            return False
        nets = self._v4 if address.version == 4 else self._v6
        for net in nets:
            if address in net:
                return True
        return False
