#!/usr/bin/python3
"""Wire compatibility of `eddy produce --avro` / `eddy consume --avro` with
avro-c, through a real broker and registry:
  1. JSON lines -> eddy produce --avro --avro-schema F: the stored records
     have exactly the header 00 + the registry's id, and avro_wire_check
     (avro-c only) decodes each datum to the end, equal to the input;
  2. frames written by avro-c (avro_wire_check encode) -> eddy consume --avro
     prints them as the expected JSON;
  3. eddy produce --avro without --avro-schema uses the subject's latest
     schema; input that does not fit fails the run with the field named;
     eddy consume --avro reports a non-Avro record instead of printing it."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jobslib as J  # noqa: E402
from jobslib import check  # noqa: E402

TOOL = os.path.join(J.BIN, "tests", "jobs", "avro_wire_check")
SCHEMA = {"type": "record", "name": "W", "namespace": "t", "fields": [
    {"name": "s", "type": "string"}, {"name": "i", "type": "int"}, {"name": "l", "type": "long"},
    {"name": "d", "type": "double"}, {"name": "b", "type": "boolean"},
    {"name": "u", "type": ["null", "string"]},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
    {"name": "a", "type": {"type": "array", "items": "int"}},
    {"name": "m", "type": {"type": "map", "values": "long"}}]}
DATA = [  # Avro's JSON encoding (unions as {"type": value})
    {"s": "eins", "i": 42, "l": -1, "d": 3.5, "b": False, "u": None, "e": "A", "a": [], "m": {}},
    {"s": "zwei \u00fc", "i": -7, "l": 1461801600000, "d": 0.25, "b": True, "u": {"string": "some"},
     "e": "B", "a": [0, 100, 200], "m": {"k1": 1}},
    {"s": "", "i": 2147483647, "l": -9223372036854775808, "d": -0.0, "b": True, "u": None, "e": "B",
     "a": [-1], "m": {"a": -5, "b": 9223372036854775807}},
]


def main():
    c = J.JobsCluster("avro-wire", partitions=1, topic="w")
    try:
        sf = os.path.join(c.dir, "w.avsc")
        with open(sf, "w") as f:
            json.dump(SCHEMA, f)
        base = [J.EDDY, "produce", "--topic", "w", "--broker", c.broker_addr, "--avro",
                "--registry", c.registry, "--quiet"]
        r = subprocess.run(base + ["--avro-schema", sf], input="\n".join(json.dumps(d) for d in DATA) + "\n",
                           capture_output=True, text=True, timeout=60 * J.MULT)
        check(r.returncode == 0, "produce --avro: %s" % r.stderr)
        latest = json.loads(J.rtlib.urllib.request.urlopen(c.registry + "/subjects/w-value/versions/latest").read())
        sid = latest["id"]
        recs = c.consume("w", len(DATA))
        frames = [J.raw(x["value"]) for x in recs]
        check(len(frames) == len(DATA), "%d records stored" % len(frames))
        for fr in frames:
            check(fr[:5] == b"\x00" + sid.to_bytes(4, "big"), "header %s == 00 + id %d" % (fr[:5].hex(), sid))
        r = subprocess.run([TOOL, "decode", sf, str(sid)], input="\n".join(f.hex() for f in frames) + "\n",
                           capture_output=True, text=True)
        check(r.returncode == 0, "avro-c decodes what eddy produced: %s" % r.stderr)
        got = [json.loads(l) for l in r.stdout.splitlines()]
        check(got == DATA, "avro-c reads back the input:\n%s\n%s" % (got, DATA))

        # avro-c -> eddy consume --avro
        r = subprocess.run([TOOL, "encode", sf, str(sid)], capture_output=True, text=True, check=True)
        J.produce_bytes(c.broker_addr, "w", [bytes.fromhex(l) for l in r.stdout.split()], partition=0)
        r = subprocess.run([J.EDDY, "consume", "--topic", "w", "--broker", c.broker_addr, "--avro",
                            "--registry", c.registry, "--from-beginning", "--exit-at-end", "--quiet"],
                           capture_output=True, text=True, timeout=60 * J.MULT)
        check(r.returncode == 0, "consume --avro: %s" % r.stderr)
        out = [json.loads(l) for l in r.stdout.splitlines()]
        check(out[:3] == DATA, "eddy consume --avro prints what eddy produced: %s" % out[:3])
        check(out[3:] == DATA[:2], "eddy consume --avro reads avro-c's frames: %s" % out[3:])

        # latest schema of the subject; a line that does not fit
        r = subprocess.run(base, input=json.dumps(DATA[0]) + "\n" + '{"s": "x"}\n',
                           capture_output=True, text=True, timeout=60 * J.MULT)
        check(r.returncode == 1 and "1 failed" in r.stderr, "a datum missing fields fails: %s" % r.stderr)
        check("'i'" in r.stderr or '"i"' in r.stderr or " i" in r.stderr, "the error names the field: %s" % r.stderr)
        # a plain record in the topic: reported, not printed, exit 1
        J.produce_bytes(c.broker_addr, "w", [b"plain text"], partition=0)
        r = subprocess.run([J.EDDY, "consume", "--topic", "w", "--broker", c.broker_addr, "--avro",
                            "--registry", c.registry, "--from-beginning", "--exit-at-end", "--quiet"],
                           capture_output=True, text=True, timeout=60 * J.MULT)
        check(r.returncode == 1 and "magic" in r.stderr, "non-Avro record reported: %s" % r.stderr)
        check(len(r.stdout.splitlines()) == 6, "only the 6 Avro records printed (%d)" % len(r.stdout.splitlines()))
    finally:
        c.close()
    J.rtlib.finish()


main()
