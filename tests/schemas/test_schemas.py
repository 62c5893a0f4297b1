"""test_schemas.py — every JSON Schema in schemas/ is a valid draft 2020-12 schema; the
shipped configs validate against the config schema; touchpoint samples are accepted or
rejected as labelled. (Real transition events are validated in tests/e2e.)"""
import glob
import json
import os
import sys

import jsonschema

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
failed = checks = 0


def check(cond, what):
    global failed, checks
    checks += 1
    if not cond:
        failed += 1
        print("FAIL", what)


def load(p):
    with open(p) as f:
        return json.load(f)


schemas = {}
for p in sorted(glob.glob(os.path.join(REPO, "schemas", "*.schema.json"))):
    s = load(p)
    try:
        jsonschema.Draft202012Validator.check_schema(s)
        ok = True
    except jsonschema.SchemaError as e:
        print(e)
        ok = False
    check(ok, f"{p} is a valid draft 2020-12 schema")
    check(s.get("$schema") == "https://json-schema.org/draft/2020-12/schema", f"{p} declares 2020-12")
    schemas[os.path.basename(p)] = jsonschema.Draft202012Validator(s)
check({"config.schema.json", "touchpoint.schema.json", "transition.schema.json"} <= set(schemas),
      "the config, touchpoint and transition schemas exist")

for p in sorted(glob.glob(os.path.join(REPO, "deploy", "config", "*.json"))):
    errs = list(schemas["config.schema.json"].iter_errors(load(p)))
    check(not errs, f"{p} validates: {[e.message for e in errs][:3]}")

samples = os.path.join(REPO, "tests", "schemas", "samples")
for p in sorted(glob.glob(os.path.join(samples, "touchpoint-*.json"))):
    valid = not list(schemas["touchpoint.schema.json"].iter_errors(load(p)))
    check(valid == ("-valid-" in p), f"{os.path.basename(p)} is {'valid' if '-valid-' in p else 'invalid'}")

for p in sorted(glob.glob(os.path.join(samples, "segment-*.json"))):
    valid = not list(schemas["segment.schema.json"].iter_errors(load(p)))
    check(valid == ("-valid-" in p), f"{os.path.basename(p)} is {'valid' if '-valid-' in p else 'invalid'}")

print(f"test_schemas: {checks} checks, {failed} failed")
sys.exit(1 if failed else 0)
