"""Failing examples the protocol fuzzer (tests/test_fuzz_protocol.py) found, kept as regression tests.

Each entry is a whole conversation, shrunk by hypothesis and written out by hand: the
options, the chunks (each a field list and its records; a list value is a multivalue
field) and the interpreters it failed under. test_fuzz_protocol.test_regression replays
every entry through the same property check as the fuzzer.

An entry whose bug is still open is listed in OPEN_BUGS: its test is an xfail(strict=True)
(so it turns into a failure, to be noticed, the day the bug is fixed) and the fuzzer's
generators leave that input shape out, so that they keep looking for other bugs. When a
bug is fixed, delete its id from OPEN_BUGS: the regression test then must pass and the
generators produce the shape again.
"""

# id -> what is wrong and where it needs fixing.
OPEN_BUGS = {}


def _serial(n):
    return {"_serial": str(n)}


REGRESSIONS = [
    {
        "id": "nul-in-a-value-python-3.9",
        "found": "fuzzer, first bounded run (any NUL in any cell; shrunk to one NUL in _raw)",
        "interpreters": ("3.9",),
        "options": {"profile": "sysmon", "direction": "outbound"},
        "chunks": [
            (["Image", "DestinationPort", "_raw"],
             [{"Image": r"C:\Windows\System32\cmd.exe", "DestinationPort": "443", "_raw": "a\x00b"}]),
        ],
    },
    {
        "id": "multivalue-first-value-empty",
        "found": "fuzzer, bounded run (3 distinct failures, shrunk by hand to these two events)",
        "interpreters": ("default", "3.9", "3.13"),
        "options": {"profile": "cim", "direction": "outbound"},
        "chunks": [
            (["app", "process_name", "dest_port", "dest_ip", "dest"],
             [{"app": ["", "x.exe"], "process_name": r"C:\Windows\System32\cmd.exe", "dest_port": "443",
               "dest_ip": "8.8.8.8"},
              {"app": "chrome.exe", "dest_port": "443", "dest_ip": ["", "x"], "dest": "fd12::1"}]),
        ],
    },
    {
        "id": "records-without-fields",
        "found": "fuzzer, first bounded run (a chunk of 0 fields and 1 or more records)",
        "interpreters": ("default", "3.9", "3.13"),
        "options": {"profile": "sysmon", "direction": "outbound"},
        "chunks": [
            ([], [{}, {}]),
        ],
    },
]
