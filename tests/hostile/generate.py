"""generate.py — the hostile corpus as (name, key, value, case) records.

Small cases are files in cases/ (the raw Kafka message value, byte for byte) listed in
manifest.json; cases too big to commit (1 MiB strings, 10,000-deep nesting, huge props) are
named there with "gen" and built here, deterministically, by the function of that name.
`load()` returns every case in manifest order; see manifest.json's description for the
fields.
"""
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
MIB = 1024 * 1024
DEEP = 10000
LIMIT = 65536  # max_message_bytes in the config the tests use (the default)


def _manifest():
    with open(os.path.join(HERE, "manifest.json")) as f:
        return json.load(f)


TS = _manifest()["ts"]


def _event(lead, eid, **kw):
    d = {"event_id": eid, "lead_id": lead, "ts": TS, "channel": "web", "type": "page_view"}
    d.update(kw)
    return json.dumps(d, separators=(",", ":")).encode()


def _with_props_raw(lead, eid, props_raw):
    """A valid event whose props member is props_raw, written as given."""
    head = _event(lead, eid)[:-1]
    return head + b',"props":' + props_raw + b"}"


def _padded(lead, total):
    """A valid event padded by a free prop to exactly total bytes."""
    base = _with_props_raw(lead, "g-" + lead, b'{"pad":""}')
    pad = total - len(base)
    assert pad >= 0
    return base.replace(b'"pad":""', b'"pad":"' + b"p" * pad + b'"')


def _big_field(field, size, lead):
    d = {"event_id": "g-" + lead, "lead_id": lead, "ts": TS, "channel": "web",
         "type": "page_view"}
    d[field] = field[0] * size
    return json.dumps(d, separators=(",", ":")).encode()


def _many_props(lead, n):
    body = ",".join('"k%05d":%d' % (i, i) for i in range(n))
    return _with_props_raw(lead, "g-" + lead, b"{" + body.encode() + b"}")


GEN = {
    "deep-top-arrays": lambda: b"[" * DEEP + b"]" * DEEP,
    "deep-top-objects": lambda: b'{"a":' * DEEP + b"1" + b"}" * DEEP,
    "deep-unclosed": lambda: b"{" * DEEP,
    "deep-props-arrays": lambda: _with_props_raw("HX-deep-pa", "g-deep-pa",
                                                 b'{"deep":' + b"[" * DEEP + b"]" * DEEP + b"}"),
    "deep-props-objects": lambda: _with_props_raw("HX-deep-po", "g-deep-po",
                                                  b'{"d":' * DEEP + b"1" + b"}" * DEEP),
    "deep-props-2000": lambda: _with_props_raw("HV-deep-2000", "g-deep-2000",
                                               b'{"deep":' + b"[" * 2000 + b"]" * 2000 + b"}"),
    "big-lead-id-60k": lambda: _big_field("lead_id", 60000, "HX-unused"),
    "big-event-id-60k": lambda: _big_field("event_id", 60000, "HX-big-eid"),
    "big-type-60k": lambda: _big_field("type", 60000, "HX-big-type"),
    "big-free-prop-60k": lambda: _with_props_raw("HV-big-free-prop", "g-bfp",
                                                 b'{"blob":"' + b"b" * 60000 + b'"}'),
    "many-props-3000": lambda: _many_props("HV-many-props", 3000),
    "exact-limit": lambda: _padded("HV-exact-limit", LIMIT),
    "limit-plus-1": lambda: _padded("HX-limit-plus-1", LIMIT + 1),
    "many-props-20000": lambda: _many_props("HX-many-props", 20000),
    "oversize-900k": lambda: _padded("HX-900k", 900 * 1024),
    "mb-lead-id": lambda: _big_field("lead_id", MIB, "HX-unused"),
    "mb-event-id": lambda: _big_field("event_id", MIB, "HX-mb-eid"),
    "mb-type": lambda: _big_field("type", MIB, "HX-mb-type"),
    "mb-props": lambda: _with_props_raw("HX-mb-props", "g-mb-props",
                                        b'{"blob":"' + b"m" * MIB + b'"}'),
    "mb-invalid-utf8": lambda: b"\xff" * MIB,
    "mb-3-not-json": lambda: bytes(range(32, 127)) * (3 * MIB // 95),
    "mb-key": lambda: b'["HX-mb-key"]',
    "mb-key-valid": lambda: _event("HV-mb-key", "g-mb-key"),
}

GEN_KEY = {
    "mb-key": b"K" * (3 * MIB // 2),
    "mb-key-valid": b"V" * (3 * MIB // 2),
}


class Case:
    def __init__(self, spec, value):
        self.spec = spec
        self.name = spec.get("name") or spec.get("gen") or spec["file"].rsplit(".", 1)[0]
        self.value = value  # bytes, or None for a tombstone
        self.expect = spec["expect"]
        self.accept = self.expect == "accept"
        if "key_hex" in spec:
            self.key = bytes.fromhex(spec["key_hex"])
        elif "key" in spec:
            self.key = None if spec["key"] is None else spec["key"].encode()
        else:
            self.key = GEN_KEY.get(self.name, ("H-" + self.name).encode())
        self.headers = [(k, v.encode()) for k, v in spec.get("headers", [])]
        self.lead_id = spec.get("lead_id")
        self.transitions = spec.get("transitions", 2)
        self.truncated = spec.get("truncated", False)

    def __repr__(self):
        return f"<case {self.name} -> {self.expect}>"


def load():
    out = []
    for spec in _manifest()["cases"]:
        if spec.get("tombstone"):
            value = None
        elif "gen" in spec:
            value = GEN[spec["gen"]]()
        else:
            with open(os.path.join(HERE, "cases", spec["file"]), "rb") as f:
                value = f.read()
        out.append(Case(spec, value))
    names = [c.name for c in out]
    assert len(set(names)) == len(names), "case names must be unique"
    values = [c.value for c in out if c.value is not None]
    assert len(set(values)) == len(values), "case values must be unique"
    return out


if __name__ == "__main__":
    for c in load():
        n = -1 if c.value is None else len(c.value)
        print(f"{c.name:32} {c.expect:16} {n:>9} {c.spec['about']}")
