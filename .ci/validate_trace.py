#!/usr/bin/env python3
"""Validate meshsim trace files against meshsim/trace.schema.json.

Usage: validate_trace.py TRACE.json [...]

Also checks that the schema rejects a corrupted copy of the first trace, so a schema that
accepts anything cannot pass.
"""
import copy
import json
import pathlib
import sys

import jsonschema

root = pathlib.Path(__file__).resolve().parent.parent
schema = json.loads((root / "meshsim" / "trace.schema.json").read_text())
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)

if len(sys.argv) < 2:
    sys.exit("usage: validate_trace.py TRACE.json [...]")

failed = False
for path in sys.argv[1:]:
    trace = json.loads(pathlib.Path(path).read_text())
    errors = sorted(validator.iter_errors(trace), key=lambda e: list(e.path))
    for e in errors[:10]:
        print(f"{path}: {'/'.join(map(str, e.path))}: {e.message}")
    if errors:
        failed = True
    else:
        print(f"{path}: valid ({len(trace['events'])} events, {len(trace['messages'])} messages)")

first = json.loads(pathlib.Path(sys.argv[1]).read_text())
for corrupt in (
    lambda t: t["events"][0].update(type="bogus"),
    lambda t: t["events"][0].pop("t_ns"),
    lambda t: t["topology"]["links"][0]["a_to_b"].update(loss=1.5),
    lambda t: t.update(version=2),
):
    bad = copy.deepcopy(first)
    corrupt(bad)
    if validator.is_valid(bad):
        print("the schema accepted a corrupted trace")
        failed = True

sys.exit(1 if failed else 0)
