#!/usr/bin/python3
"""Schema registry end to end: a real `eddy broker`, a real `eddy registry`, the
Confluent REST API over HTTP; restart keeps ids; compatibility accepts and rejects."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.environ.get("EDDY_SOURCE_DIR", "."), "tests", "lib"))
from eddytest import Server, free_port, http, start_broker, tmpdir  # noqa: E402

CT = "application/vnd.schemaregistry.v1+json"


def rec(fields, name="Click"):
    return json.dumps({"type": "record", "name": name, "namespace": "eddy", "fields": fields})


V1 = rec([{"name": "userid", "type": "string"}])
V2 = rec([{"name": "userid", "type": "string"}, {"name": "item", "type": "string", "default": ""}])
V3_BAD = rec([{"name": "userid", "type": "string"}, {"name": "n", "type": "int"}])  # no default


def main():
    d = tmpdir()
    broker = start_broker(d)
    port = free_port()
    args = ["registry", "--broker", "127.0.0.1:%d" % broker.port, "--listen", "127.0.0.1:%d" % port]
    reg = Server(args, port, d, "registry").start(timeout=30)
    base = "http://127.0.0.1:%d" % port

    def call(method, path, body=None):
        return http(method, base + path, body, {"Content-Type": CT} if body is not None else None)

    assert call("GET", "/") == (200, {})
    assert call("GET", "/schemas/types") == (200, ["AVRO"])
    assert call("GET", "/subjects") == (200, [])
    # register, idempotently; same schema under another subject shares the id
    st, r1 = call("POST", "/subjects/clicks-value/versions", {"schema": V1})
    assert st == 200 and r1["id"] >= 1, (st, r1)
    spaced = json.dumps(json.loads(V1), indent=2)  # same schema, other whitespace
    assert call("POST", "/subjects/clicks-value/versions", {"schema": spaced}) == (200, r1)
    assert call("POST", "/subjects/other-value/versions", {"schema": V1}) == (200, r1)
    st, r2 = call("POST", "/subjects/clicks-value/versions", {"schema": V2})
    assert st == 200 and r2["id"] != r1["id"]
    # incompatible under the default BACKWARD: 409 with Confluent's error body
    st, err = call("POST", "/subjects/clicks-value/versions", {"schema": V3_BAD})
    assert st == 409 and err["error_code"] == 409 and "incompatible" in err["message"], (st, err)
    st, c = call("POST", "/compatibility/subjects/clicks-value/versions/latest?verbose=true", {"schema": V3_BAD})
    assert st == 200 and c["is_compatible"] is False and c["messages"], c
    assert call("POST", "/compatibility/subjects/clicks-value/versions/1", {"schema": V2}) == (200, {"is_compatible": True})
    # invalid schema and invalid version
    st, err = call("POST", "/subjects/x/versions", {"schema": "{\"type\":\"nope\"}"})
    assert st == 422 and err["error_code"] == 42201, err
    st, err = call("GET", "/subjects/clicks-value/versions/zero")
    assert st == 422 and err["error_code"] == 42202, err
    # reads
    assert call("GET", "/subjects/clicks-value/versions") == (200, [1, 2])
    st, v = call("GET", "/subjects/clicks-value/versions/latest")
    assert st == 200 and v["version"] == 2 and v["id"] == r2["id"] and json.loads(v["schema"]) == json.loads(V2)
    st, raw = call("GET", "/subjects/clicks-value/versions/1/schema")
    assert st == 200 and raw == json.loads(V1), raw
    st, byid = call("GET", "/schemas/ids/%d" % r1["id"])
    assert st == 200 and json.loads(byid["schema"]) == json.loads(V1)
    st, uses = call("GET", "/schemas/ids/%d/versions" % r1["id"])
    assert st == 200 and {"subject": "clicks-value", "version": 1} in uses and {"subject": "other-value", "version": 1} in uses
    st, err = call("GET", "/schemas/ids/9999")
    assert st == 404 and err["error_code"] == 40403
    st, look = call("POST", "/subjects/clicks-value", {"schema": V2})
    assert st == 200 and look["version"] == 2
    st, err = call("POST", "/subjects/nosuch", {"schema": V2})
    assert st == 404 and err["error_code"] == 40401
    # config: global and per subject (note the key-name asymmetry of the real API)
    assert call("GET", "/config") == (200, {"compatibilityLevel": "BACKWARD"})
    assert call("PUT", "/config/clicks-value", {"compatibility": "none"}) == (200, {"compatibility": "NONE"})
    assert call("GET", "/config/clicks-value") == (200, {"compatibilityLevel": "NONE"})
    st, err = call("GET", "/config/other-value")
    assert st == 404 and err["error_code"] == 40408
    assert call("GET", "/config/other-value?defaultToGlobal=true") == (200, {"compatibilityLevel": "BACKWARD"})
    st, err = call("PUT", "/config", {"compatibility": "SIDEWAYS"})
    assert st == 422 and err["error_code"] == 42203
    st, r3 = call("POST", "/subjects/clicks-value/versions", {"schema": V3_BAD})  # NONE: accepted
    assert st == 200, (st, r3)
    # deletes: soft, then permanent; ids still resolve after soft delete
    assert call("DELETE", "/subjects/other-value/versions/1?permanent=true")[1]["error_code"] == 40407
    assert call("DELETE", "/subjects/other-value") == (200, [1])
    st, err = call("GET", "/subjects/other-value/versions")
    assert st == 404 and err["error_code"] == 40401
    assert call("GET", "/subjects?deleted=true")[1].count("other-value") == 1
    assert "other-value" not in call("GET", "/subjects")[1]
    assert call("DELETE", "/subjects/other-value")[1]["error_code"] == 40404
    assert call("DELETE", "/subjects/other-value?permanent=true") == (200, [1])
    assert call("GET", "/schemas/ids/%d" % r1["id"])[0] == 200  # still used by clicks-value

    # restart: state comes back from the _schemas topic, ids unchanged and never reused
    assert reg.stop() == 0
    reg = Server(args, port, d, "registry").start(timeout=30)
    assert call("GET", "/subjects/clicks-value/versions") == (200, [1, 2, 3])
    assert call("GET", "/config/clicks-value") == (200, {"compatibilityLevel": "NONE"})
    st, again = call("POST", "/subjects/clicks-value/versions", {"schema": V2})
    assert again == r2, again
    st, fresh = call("POST", "/subjects/new-value/versions", {"schema": rec([{"name": "z", "type": "long"}], "Z")})
    assert st == 200 and fresh["id"] > r3["id"], (fresh, r3)
    st, metrics = call("GET", "/metrics")
    assert st == 200 and "eddy_http_requests_total" in metrics
    assert reg.stop() == 0
    assert broker.stop() == 0
    print("registry: all checks passed")


if __name__ == "__main__":
    main()
