#!/usr/bin/env python3
"""Renders chat templates with Jinja2 configured as Hugging Face's apply_chat_template does, as
the reference for tests/model/chat_template_jinja_test.cpp.

    chat_template_reference.py CASES.json OUT.json

CASES.json is a list of {"template": str, "context": {...}}; OUT.json gets one entry per case:
{"ok": true, "output": str} or {"ok": false, "error": str}. The environment: an immutable
sandbox with trim_blocks and lstrip_blocks, the loop-controls extension, raise_exception() and
strftime_now() as globals, and a tojson filter that keeps key order and non-ASCII text
(json.dumps with ensure_ascii=False), as transformers sets it up.
"""
import datetime
import json
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.datetime.now().strftime(fmt)


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        cases = json.load(f)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    results = []
    for case in cases:
        try:
            output = env.from_string(case["template"]).render(**case["context"])
            results.append({"ok": True, "output": output})
        except Exception as e:  # noqa: BLE001 -- any failure is compared as "failed"
            results.append({"ok": False, "error": f"{type(e).__name__}: {e}"})
    with open(sys.argv[2], "w", encoding="utf-8") as f:
        json.dump(results, f, ensure_ascii=False)


if __name__ == "__main__":
    main()
