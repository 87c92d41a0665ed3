#!/usr/bin/env python3
"""Compares our UI -> API conversions with what ComfyUI's frontend produced (tests/frontend/record).

    tests/frontend/compare.py TRUTH_DIR OURS_DIR [--min-pass-rate R] [--convert-cmd TEMPLATE]
                              [--jobs N] [--corpus NAME] [--only SUBSTRING] [--show all|failures|none]
                              [--json REPORT]

TRUTH_DIR is a directory written by tests/frontend/record: `<corpus>/<file>.json` records holding
`output` (graphToPrompt().output) or `error`, plus `object_info.json` and `meta.json`.
OURS_DIR holds our conversions at the same relative paths. Each file may be the API prompt itself
(node id -> {class_type, inputs}), or an object with the prompt under `output` or `prompt` (the
`comfyui-mcp convert --batch` format is {output, diagnostics}), or {"error": ...} when our
conversion failed.

With --convert-cmd, OURS_DIR is filled first by running the command once per workflow; its stdout
is the prompt. Placeholders: {workflow} (the UI file), {object_info} (TRUTH_DIR/object_info.json),
{date} (the local time the frontend was pinned to, e.g. 2024-03-05T06:07:08). Example:

    --convert-cmd 'target/debug/comfyui-mcp convert {workflow} --object-info {object_info} --date {date}'

Only `class_type` and `inputs` are compared (`_meta` is ignored). Numbers compare by value (1 ==
1.0), booleans only with booleans. A node the frontend emitted without `class_type` (node types
the server does not know) must have no class_type (or null) in ours too. Inputs the recorder found
to depend on Math.random or the clock (`nondeterministic` in the record) are excluded; a
`nondeterministic` entry without an input excludes the whole node.

Per workflow: identical, different (first differing node and input, in node-id order), missing
(no file of ours), ours-error (our file says error or is unreadable), frontend-error (the frontend
itself failed; excluded from the pass rate). The pass rate of a corpus is
identical / (workflows - frontend errors). Exit status: 1 when any corpus (or, with --corpus, the
chosen one) is below --min-pass-rate (a fraction, 0.95, or a percentage, 95), 2 on bad usage.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

STATUSES = ("identical", "different", "missing", "ours-error", "frontend-error")
ABSENT = object()


# ----------------------------------------------------------------------------- reading


def read_json(path: Path):
    """Lenient JSON: Python's parser accepts NaN and Infinity, which some writers emit."""
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def is_prompt(value) -> bool:
    return isinstance(value, dict) and all(
        isinstance(node, dict) and ("inputs" in node or "class_type" in node) for node in value.values()
    )


def extract_prompt(value):
    """(prompt, error) from one of our files."""
    if isinstance(value, dict):
        for key in ("output", "prompt"):
            if key in value and is_prompt(value[key]):
                return value[key], None
        if "error" in value and not is_prompt(value):
            return None, str(value["error"])
        if is_prompt(value):
            return value, None
    return None, "not an API prompt (expected node id -> {class_type, inputs}, or {output: ...})"


def truth_records(truth: Path, corpus: str | None, only: str | None):
    """(corpus, file name, path) of every recorded workflow, sorted."""
    found = []
    for corpus_dir in sorted(p for p in truth.iterdir() if p.is_dir()):
        if corpus and corpus_dir.name != corpus:
            continue
        for path in sorted(corpus_dir.glob("*.json")):
            if only and only not in path.name:
                continue
            found.append((corpus_dir.name, path.name, path))
    return found


# ----------------------------------------------------------------------------- comparing


def natural_key(node_id: str):
    """Node ids in the frontend's order: "3" < "10" < "75:3" < "75:12"."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in str(node_id).split(":")]


def same_value(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def short(value, limit: int = 160) -> str:
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def compare_prompts(truth: dict, ours: dict, excluded: set, excluded_nodes: set):
    """(differences, excluded_count): differences are dicts in node-id order."""
    differences = []
    excluded_count = 0
    for node_id in sorted(set(truth) | set(ours), key=natural_key):
        if node_id in excluded_nodes:
            excluded_count += 1
            continue
        t_node = truth.get(node_id)
        o_node = ours.get(node_id)
        if t_node is None or o_node is None:
            differences.append({
                "node": node_id,
                "class_type": (t_node or o_node or {}).get("class_type"),
                "input": None,
                "what": "node only in ours" if t_node is None else "node missing from ours",
            })
            continue
        t_class = t_node.get("class_type")
        o_class = o_node.get("class_type")
        if t_class != o_class:
            differences.append({
                "node": node_id,
                "class_type": t_class,
                "input": None,
                "what": "class_type",
                "truth": t_class if "class_type" in t_node else ABSENT,
                "ours": o_class if "class_type" in o_node else ABSENT,
            })
            continue
        t_inputs = t_node.get("inputs") or {}
        o_inputs = o_node.get("inputs") or {}
        names = list(t_inputs) + sorted(set(o_inputs) - set(t_inputs))
        for name in names:
            if (node_id, name) in excluded:
                excluded_count += 1
                continue
            t_value = t_inputs.get(name, ABSENT)
            o_value = o_inputs.get(name, ABSENT)
            if t_value is ABSENT or o_value is ABSENT or not same_value(t_value, o_value):
                differences.append({
                    "node": node_id,
                    "class_type": t_class,
                    "input": name,
                    "what": "input",
                    "truth": t_value,
                    "ours": o_value,
                })
    return differences, excluded_count


def describe(difference: dict) -> str:
    where = f"node {difference['node']}"
    if difference.get("class_type"):
        where += f" ({difference['class_type']})"
    if difference["what"] == "input":
        return (f"{where} input {difference['input']}: "
                f"frontend {short(difference['truth'])} != ours {short(difference['ours'])}")
    if difference["what"] == "class_type":
        return (f"{where}: class_type frontend {short(difference['truth'])} != "
                f"ours {short(difference['ours'])}")
    return f"{where}: {difference['what']}"


def compare_one(record: dict, ours_path: Path) -> dict:
    if "output" not in record:
        error = record.get("error") or {}
        return {"status": "frontend-error", "detail": f"{error.get('stage', '?')}: {error.get('message', '?')}"}
    if not ours_path.exists():
        return {"status": "missing", "detail": f"no {ours_path}"}
    try:
        ours_value = read_json(ours_path)
    except (OSError, ValueError) as error:
        return {"status": "ours-error", "detail": f"unreadable: {error}"}
    ours, error = extract_prompt(ours_value)
    if ours is None:
        return {"status": "ours-error", "detail": error}
    excluded = set()
    excluded_nodes = set()
    for entry in record.get("nondeterministic") or []:
        if entry.get("node") is None:
            continue
        if entry.get("input") is None:
            excluded_nodes.add(str(entry["node"]))
        else:
            excluded.add((str(entry["node"]), entry["input"]))
    differences, excluded_count = compare_prompts(record["output"], ours, excluded, excluded_nodes)
    result = {"excluded": excluded_count}
    if not differences:
        result["status"] = "identical"
        return result
    result["status"] = "different"
    result["detail"] = describe(differences[0])
    result["differing_nodes"] = len({d["node"] for d in differences})
    result["differences"] = len(differences)
    result["first"] = {k: (None if v is ABSENT else v) for k, v in differences[0].items()}
    result["first"]["absent"] = [k for k in ("truth", "ours") if differences[0].get(k, None) is ABSENT]
    return result


# ----------------------------------------------------------------------------- converting


def pinned_date(record: dict) -> str:
    """The local time of the pin, as YYYY-MM-DDTHH:MM:SS (the recorder pins the UTC zone)."""
    time = (record.get("pinned") or {}).get("time", "")
    match = re.match(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})", time)
    return match.group(1) if match else ""


def convert_all(template: str, truth: Path, ours: Path, entries, jobs: int) -> None:
    object_info = truth / "object_info.json"
    tokens = shlex.split(template)

    def run(entry):
        corpus, name, path = entry
        record = read_json(path)
        target = ours / corpus / name
        target.parent.mkdir(parents=True, exist_ok=True)
        workflow = record.get("workflow_file")
        if not workflow or not Path(workflow).exists():
            result = {"error": f"workflow file not found: {workflow}"}
        else:
            values = {"workflow": workflow, "object_info": str(object_info), "date": pinned_date(record)}
            argv = [token.format(**values) for token in tokens]
            try:
                done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
            except (OSError, subprocess.TimeoutExpired) as error:
                result = {"error": f"{argv[0]}: {error}"}
            else:
                # A prompt on stdout counts even with a non-zero exit (the CLI exits 1 when it
                # reports errors, e.g. unknown node types, but still prints what it converted).
                prompt = None
                try:
                    prompt, _ = extract_prompt(json.loads(done.stdout))
                except ValueError:
                    pass
                if prompt is not None:
                    result = {"output": prompt, "exit_code": done.returncode}
                    if done.returncode != 0:
                        result["stderr"] = done.stderr.strip()[-2000:]
                elif done.returncode != 0:
                    result = {"error": f"exit {done.returncode}: {done.stderr.strip()[-2000:]}"}
                else:
                    result = {"error": f"stdout is not an API prompt: {done.stdout[:200]!r}"}
        with tempfile.NamedTemporaryFile("w", dir=target.parent, delete=False, suffix=".tmp", encoding="utf-8") as tmp:
            json.dump(result, tmp)
        os.replace(tmp.name, target)

    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(run, entries))


# ----------------------------------------------------------------------------- main


def parse_rate(text: str) -> float:
    value = float(text)
    if value < 0 or value > 100:
        raise argparse.ArgumentTypeError("a pass rate is between 0 and 1 (or 0 and 100 percent)")
    return value / 100 if value > 1 else value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("truth", type=Path, help="directory written by tests/frontend/record")
    parser.add_argument("ours", type=Path, help="directory of our conversions (same relative paths)")
    parser.add_argument("--min-pass-rate", type=parse_rate, default=None,
                        help="exit 1 when a corpus is below this (0.95 or 95)")
    parser.add_argument("--convert-cmd", help="fill OURS first with this command per workflow (see above)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="parallel --convert-cmd runs")
    parser.add_argument("--corpus", help="only this corpus (a subdirectory of TRUTH)")
    parser.add_argument("--only", help="only workflows whose file name contains this")
    parser.add_argument("--show", choices=("all", "failures", "none"), default="failures",
                        help="which per-workflow lines to print (default: failures)")
    parser.add_argument("--json", type=Path, dest="json_report", help="also write the full report here")
    args = parser.parse_args(argv)

    if not args.truth.is_dir():
        print(f"compare: {args.truth} is not a directory (run tests/frontend/record first)", file=sys.stderr)
        return 2
    entries = truth_records(args.truth, args.corpus, args.only)
    if not entries:
        print(f"compare: no recorded workflows under {args.truth}", file=sys.stderr)
        return 2
    if args.convert_cmd:
        args.ours.mkdir(parents=True, exist_ok=True)
        convert_all(args.convert_cmd, args.truth, args.ours, entries, args.jobs)
    elif not args.ours.is_dir():
        print(f"compare: {args.ours} does not exist; every workflow counts as missing", file=sys.stderr)

    results = []
    for corpus, name, path in entries:
        record = read_json(path)
        result = compare_one(record, args.ours / corpus / name)
        result.update({"corpus": corpus, "workflow": name})
        results.append(result)
        if args.show == "all" or (args.show == "failures" and result["status"] not in ("identical",)):
            line = f"{result['status']:<14} {corpus}/{name}"
            if result.get("detail"):
                line += f": {result['detail']}"
            if result.get("differing_nodes", 0) > 1:
                line += f" (+{result['differing_nodes'] - 1} more nodes)"
            print(line)

    summary = {}
    for corpus in sorted({r["corpus"] for r in results}):
        mine = [r for r in results if r["corpus"] == corpus]
        counts = {status: sum(1 for r in mine if r["status"] == status) for status in STATUSES}
        comparable = len(mine) - counts["frontend-error"]
        rate = counts["identical"] / comparable if comparable else 0.0
        summary[corpus] = {"workflows": len(mine), **counts, "pass_rate": rate,
                           "excluded_inputs": sum(r.get("excluded", 0) for r in results if r["corpus"] == corpus)}
    print()
    print(f"{'corpus':<16} {'workflows':>9} {'identical':>9} {'different':>9} {'missing':>8} "
          f"{'ours-err':>8} {'fe-err':>7} {'excluded':>8} {'pass rate':>9}")
    for corpus, s in summary.items():
        print(f"{corpus:<16} {s['workflows']:>9} {s['identical']:>9} {s['different']:>9} {s['missing']:>8} "
              f"{s['ours-error']:>8} {s['frontend-error']:>7} {s['excluded_inputs']:>8} {s['pass_rate']:>8.1%}")

    failing = []
    if args.min_pass_rate is not None:
        failing = [c for c, s in summary.items() if s["pass_rate"] < args.min_pass_rate]
        if failing:
            print(f"\nbelow the minimum pass rate {args.min_pass_rate:.1%}: {', '.join(failing)}")
        else:
            print(f"\nevery corpus reaches the minimum pass rate {args.min_pass_rate:.1%}")
    if args.json_report:
        meta = {}
        if (args.truth / "meta.json").exists():
            meta = read_json(args.truth / "meta.json")
        report = {
            "truth": str(args.truth),
            "ours": str(args.ours),
            "frontend_version": meta.get("frontend_version"),
            "min_pass_rate": args.min_pass_rate,
            "summary": summary,
            "workflows": results,
        }
        args.json_report.write_text(json.dumps(report, indent=1, default=str) + "\n", encoding="utf-8")
    return 1 if failing else 0


if __name__ == "__main__":
    sys.exit(main())
