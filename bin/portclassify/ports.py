"""Port values and port lists."""


def parse_port(text):
    """Return the port in `text` as an int 0-65535, or None.

    Leading zeros and surrounding blanks are accepted ("0443" is 443); signs,
    decimals, non-ASCII digits and anything above 65535 are not.
    """
    text = text.strip()
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= 65535 else None


def parse_port_spec(spec):
    """Parse "80,443,8000-8100" into a sorted list of (low, high) ranges.

    Raises ValueError naming the piece that is not a port or a range.
    """
    ranges = []
    pieces = [piece.strip() for piece in spec.split(",")]
    if not any(pieces):
        raise ValueError("no port given")
    for piece in pieces:
        if not piece:
            continue
        low_text, dash, high_text = piece.partition("-")
        low = parse_port(low_text)
        high = parse_port(high_text) if dash else low
        if low is None or high is None:
            raise ValueError("%r is not a port (0-65535) or a range N-M" % piece)
        if high < low:
            raise ValueError("%r is a range whose end is below its start" % piece)
        ranges.append((low, high))
    return sorted(ranges)


class PortSet:
    """Constant-time membership for a set of ports."""

    __slots__ = ("_table", "ranges")

    def __init__(self, ranges):
        self.ranges = tuple(ranges)
        table = bytearray(65536)
        for low, high in self.ranges:
            table[low:high + 1] = b"\x01" * (high - low + 1)
        self._table = table

    def __contains__(self, port):
        return port is not None and self._table[port] == 1

    def describe(self):
        return ",".join(str(low) if low == high else "%d-%d" % (low, high) for low, high in self.ranges)
