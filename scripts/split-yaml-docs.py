#!/usr/bin/env python3
"""Writes each document of the given multi-document YAML files as its own JSON file in OUT,
so that a validator that takes one document per file can check them."""
import json
import pathlib
import sys

from ruamel.yaml import YAML

out = pathlib.Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
yaml = YAML(typ="safe")
count = 0
for name in sys.argv[2:]:
    for i, doc in enumerate(yaml.load_all(pathlib.Path(name).read_text())):
        if doc is None:
            continue
        stem = name.replace("/", "__")
        (out / f"{stem}.{i}.json").write_text(json.dumps(doc))
        count += 1
print(f"split {count} documents from {len(sys.argv) - 2} files")
