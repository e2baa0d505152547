#!/usr/bin/env python
"""Benchmark yardstick (not shipped): a splunklib StreamingCommand that returns every record unchanged.

It is the cheapest command the SDK allows: splunklib reads each chunk into
OrderedDicts and writes them back, and `stream` adds nothing, so its throughput
is the ceiling of any command built on the SDK's per-record path.

splunklib is imported from $CLASSIFYPORT_BENCH_BIN (tools/bench.py points it at
the packaged app's bin/, so the yardstick uses the same vendored SDK as the
command it is compared with), else from the repository's bin/.
"""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.environ.get("CLASSIFYPORT_BENCH_BIN") or os.path.join(ROOT, "bin"))

from splunklib.searchcommands import Configuration, StreamingCommand, dispatch  # noqa: E402


@Configuration(distributed=True)
class NoopCommand(StreamingCommand):
    def stream(self, records):
        return records


if __name__ == "__main__":
    dispatch(NoopCommand, sys.argv, sys.stdin, sys.stdout, __name__)
