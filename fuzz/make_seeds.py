#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/corpus/ from the repository's fixtures (needs PyYAML).

Run from anywhere: python3 fuzz/make_seeds.py. fuzz/corpus/ofrep_context/regression-*.json is a
found crash input, kept by hand."""
import json, os, re, yaml, hashlib, struct
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
out = os.path.join(root, 'fuzz/corpus')
def put(target, name, data):
    d = os.path.join(out, target); os.makedirs(d, exist_ok=True)
    if isinstance(data, str): data = data.encode()
    open(os.path.join(d, name), 'wb').write(data)

suites = {}
for s in ['targeting', 'evaluation', 'bucketing']:
    suites[s] = json.load(open(f'{root}/shared/fixtures/conformance/{s}.json'))

readme = open(f'{root}/README.md').read()
m = re.search(r'A config looks like:\n\n```yaml\n(.*?)```', readme, re.S)
readme_yaml = m.group(1)
lib = open(f'{root}/shared/src/lib.rs').read()
m = re.search(r'from_yaml\(r#"\n(.*?)"#\)', lib, re.S)
lib_yaml = '\n'.join(l[4:] if l.startswith('//! ') else l[3:] for l in m.group(1).split('\n'))

# config_json: conformance configs (compact and pretty), README example, a few small ones.
for s, suite in suites.items():
    put('config_json', f'conformance-{s}.json', json.dumps(suite['config'], separators=(',', ':')))
put('config_json', 'readme.json', json.dumps(yaml.safe_load(readme_yaml), indent=2))
put('config_json', 'lib-doc.json', json.dumps(yaml.safe_load(lib_yaml)))
put('config_json', 'empty.json', '{}')
put('config_json', 'invalid-split.json', json.dumps({"flags": [{"key": "f", "type": "string",
    "variants": [{"key": "a", "value": "A"}, {"key": "b", "value": "B"}], "default_variant": "a",
    "rules": [{"split": [{"variant": "a", "weight": 5000}, {"variant": "b", "weight": 4000}]}]}]}))

# config_yaml: README and lib.rs examples, conformance configs as YAML.
put('config_yaml', 'readme.yaml', readme_yaml)
put('config_yaml', 'lib-doc.yaml', lib_yaml)
for s, suite in suites.items():
    put('config_yaml', f'conformance-{s}.yaml', yaml.safe_dump(suite['config'], sort_keys=False))
put('config_yaml', 'empty.yaml', '{}\n')
put('config_yaml', 'anchors.yaml', 'segments:\n  - &s {key: a, conditions: {attribute: x, op: eq, values: [y]}}\nflags: []\n')

# event_json: the cases of shared/src/events.rs's agreement test.
ev = open(f'{root}/shared/src/events.rs').read()
cases = re.findall(r'r#"(.*?)"#', ev.split('fn from_json_agrees_with_the_derived_deserializer')[1].split('fn from_json_names')[0])
for i, c in enumerate(cases):
    put('event_json', f'case-{i:02}.json', c)

# ofrep_context: bodies from tests/integration/ofrep.rs and conformance users.
bodies = [
    {"context": {"targetingKey": "u1", "plan": "pro", "age": 31, "beta": True, "tags": ["a"], "gone": None}},
    {"context": {"targetingKey": "u2", "plan": "free"}},
    {"context": {"targetingKey": ""}},
    {"context": {"targetingKey": 42}},
    {"context": {"targetingKey": "u", "address": {"city": "x"}}},
    {"context": {"targetingKey": "u", "n": 16777216, "m": -1.5, "big": 1e300, "small": 63}},
    {"context": {"targetingKey": "u", **{f"a{i}": i for i in range(40)}}},
    {"context": {"targetingKey": "u", "x" * 130: "long name"}},
]
seen = set()
for s, suite in suites.items():
    for case in suite['cases']:
        u = case['user']
        body = {"context": {"targetingKey": u['key'], **u.get('attributes', {})}}
        k = json.dumps(sorted(body['context'].keys()))
        if k in seen: continue
        seen.add(k); bodies.append(body)
for i, b in enumerate(bodies[:45]):
    put('ofrep_context', f'body-{i:02}.json', json.dumps(b))

# sse_stream: 2-byte limit (little endian, +1), 4 chunk sizes (+1), then the stream.
def sse(limit, sizes, stream):
    return struct.pack('<H', limit - 1) + bytes(s - 1 for s in sizes) + stream
cfg = json.dumps(yaml.safe_load(readme_yaml), separators=(',', ':')).encode()
put('sse_stream', 'server-frames', sse(65535, [7, 1, 64, 3],
    b'retry: 1000\n\nid: 3\nevent: config\ndata: ' + cfg + b'\n\n: keep-alive\n\nid: 4\nevent: config\ndata: {}\n\n'))
put('sse_stream', 'crlf-multiline', sse(4096, [2, 5, 1, 9],
    b'event: config\r\ndata: {"a":\r\ndata:1}\r\n\r\nevent: other\r\ndata: x\r\n\r\ndata:noevent\r\n\r\n'))
put('sse_stream', 'over-limit', sse(16, [4, 4, 4, 4], b'data: 0123456789abcdefghij\n\n'))
put('sse_stream', 'comments-only', sse(100, [1, 1, 1, 1], b': ping\n\n: ping\n\nid: 1\nretry: 5\n\n'))
