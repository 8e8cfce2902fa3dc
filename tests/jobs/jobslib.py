"""Helpers for the jobs' end-to-end tests: rtlib's cluster (broker, driver
with its embedded store, workers) plus a schema registry, the shipped job
.so files, and a Python reader of the click log format and of Avro clicks
(independent of Eddy's C code, so the tests check it rather than mirror it)."""
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.environ.get("EDDY_SOURCE_DIR", "."), "tests", "runtime"))
import rtlib  # noqa: E402
from rtlib import EDDY, BIN, MULT, SCALE, check, wait_for, free_port  # noqa: E402,F401

B, C = "\x02", "\x03"


class JobsCluster(rtlib.Cluster):
    def __init__(self, name, partitions=2, topic="lines", outputs=()):
        super().__init__(name, partitions=partitions, topic=topic)
        for t, n in outputs:
            self.run([EDDY, "topics", "create", t, "--partitions", str(n), "--broker", self.broker_addr])
        self.rport = free_port()
        self.registry = "http://127.0.0.1:%d" % self.rport
        self.spawn("registry", [EDDY, "registry", "--broker", self.broker_addr,
                                "--listen", "127.0.0.1:%d" % self.rport,
                                "--data", os.path.join(self.dir, "registry")])
        wait_for(lambda: self._connectable(self.rport), "registry port")

    def submit_job(self, so, name, topic, config, *extra):
        return self.run([EDDY, "submit", os.path.join(BIN, "jobs", so + ".so"), "--name", name,
                         "--input", topic, "--driver", self.driver_addr, "--data", self.data,
                         "--starting-offsets", "earliest", "--interval", "0",
                         "--config", json.dumps(config)] + list(extra))

    def consume(self, topic, n, extra=()):
        """The first n records of topic as JSON objects (eddy consume --json)."""
        r = self.run([EDDY, "consume", "--topic", topic, "--broker", self.broker_addr,
                      "--from-beginning", "--exit-at-end", "--json", "--quiet"] + list(extra))
        recs = [json.loads(l) for l in r.stdout.split("\n") if l.strip()]
        return recs

    def gen(self, topic, lines, seed, users=50, items=100):
        self.run([EDDY, "gen", "clicklog", "--topic", topic, "--broker", self.broker_addr,
                  "--lines", str(lines), "--seed", str(seed), "--users", str(users),
                  "--items", str(items)])
        path = os.path.join(self.dir, "gen-%d.txt" % seed)
        self.run([EDDY, "gen", "clicklog", "--output", path, "--lines", str(lines), "--seed",
                  str(seed), "--users", str(users), "--items", str(items)])
        with open(path, encoding="utf-8") as f:
            return [l.rstrip("\n") for l in f]


def ts_ms(s):
    return int(datetime.datetime.fromisoformat(s).timestamp() * 1000)


def clicks_of(line):
    """The clicks of a well-formed generated line: [{ts, userid, event, item, rating, ...}]."""
    head, _, arr = line.partition(B + "data_array" + C)
    fields = head.split(B)
    top = dict(f.split("=", 1) for f in fields[1:])
    out = []
    elems = [e for e in arr.split(C) if e] if arr else [""]
    for e in elems:
        d = dict(top)
        d.update(dict(p.split("=", 1) for p in e.split(B) if p))
        d["ts"] = ts_ms(fields[0])
        out.append(d)
    return out


# -- an independent Avro binary reader for the Click schema ------------------
def _long(b, i):
    shift = n = 0
    while True:
        x = b[i]
        i += 1
        n |= (x & 0x7F) << shift
        shift += 7
        if not x & 0x80:
            return (n >> 1) ^ -(n & 1), i


def _str(b, i):
    n, i = _long(b, i)
    return b[i:i + n].decode(), i + n


def decode_click(b):
    """A Confluent-framed Click (jobs/clicklog/clicklog_avro.h) -> (schema id, dict)."""
    assert b[0] == 0, "magic byte %d" % b[0]
    sid = int.from_bytes(b[1:5], "big")
    i, r = 5, {}
    r["date"], i = _str(b, i)
    r["time"], i = _str(b, i)
    r["ts"], i = _long(b, i)
    r["userid"], i = _str(b, i)
    r["event"], i = _str(b, i)
    for name, kind in (("subevent", "int"), ("item", "str"), ("rating", "int")):
        br, i = _long(b, i)
        if br == 0:
            r[name] = None
        elif kind == "int":
            r[name], i = _long(b, i)
        else:
            r[name], i = _str(b, i)
    attrs = {}
    while True:
        n, i = _long(b, i)
        if n == 0:
            break
        if n < 0:
            n = -n
            _, i = _long(b, i)
        for _ in range(n):
            k, i = _str(b, i)
            attrs[k], i = _str(b, i)
    r["attrs"] = attrs
    assert i == len(b), "%d trailing bytes" % (len(b) - i)
    return sid, r


def raw(v):
    """A consume --json value back to bytes (non-UTF-8 bytes come as surrogate escapes)."""
    return v.encode("utf-8", "surrogateescape")


# -- an independent Avro binary writer (the counts test feeds Avro directly) --
def _wlong(n):
    u = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        if u < 0x80:
            out.append(u)
            return bytes(out)
        out.append((u & 0x7F) | 0x80)
        u >>= 7


def _wstr(s):
    b = s.encode()
    return _wlong(len(b)) + b


def encode_click(sid, c):
    """A dict with ts, userid, event[, item, rating] -> Confluent-framed Click."""
    dt = datetime.datetime.fromtimestamp(c["ts"] / 1000, datetime.timezone.utc).isoformat()
    out = b"\x00" + sid.to_bytes(4, "big")
    out += _wstr(dt[:10]) + _wstr(dt[11:]) + _wlong(c["ts"]) + _wstr(c["userid"]) + _wstr(c["event"])
    out += b"\x00"  # subevent null
    out += (b"\x02" + _wstr(c["item"])) if c.get("item") is not None else b"\x00"
    out += (b"\x02" + _wlong(int(c["rating"]))) if c.get("rating") is not None else b"\x00"
    out += b"\x00"  # attrs: empty map
    return out


CLICK_SCHEMA = None


def click_schema():
    """The Click schema as the C encoder declares it (read from its source)."""
    src = open(os.path.join(os.environ.get("EDDY_SOURCE_DIR", "."), "jobs", "clicklog",
                            "clicklog_avro.c")).read()
    start = src.index("CLICKLOG_AVRO_SCHEMA[] =") + len("CLICKLOG_AVRO_SCHEMA[] =")
    body = src[start:src.index(";", start)]
    import re
    return "".join(bytes(m, "utf-8").decode("unicode_escape") for m in re.findall(r'"((?:[^"\\]|\\.)*)"', body))


def register(registry, subject, schema):
    import urllib.request
    req = urllib.request.Request("%s/subjects/%s/versions" % (registry, subject),
                                 data=json.dumps({"schema": schema}).encode(), method="POST",
                                 headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
    with urllib.request.urlopen(req, timeout=30 * MULT) as r:
        return json.loads(r.read())["id"]


def produce_bytes(broker, topic, values, partition=None, key=None, headers=None):
    """headers: None, or one list of (name, bytes) per value."""
    from kafka import KafkaProducer
    p = KafkaProducer(bootstrap_servers=broker, api_version=(2, 5, 0))
    for i, v in enumerate(values):
        k = key(v) if key else None
        p.send(topic, value=v, key=k, partition=partition, headers=headers[i] if headers else None)
    p.flush(timeout=60 * MULT)
    p.close()
