#!/usr/bin/env python3
"""Renames hub/core's internal `hub__xxx` names to module-qualified ones.

`hub__` says nothing about which file a name lives in (issue 13, item 6).
Each function, type, macro or variable named `hub__xxx` that a file of
hub/core defines is renamed after that file: defined in hub_admit.c, it
becomes `admit__xxx`; in hub_store_queue.c, `store_queue__xxx`; in
hub_core_internal.h, `core__xxx` (the `hub_` and `_internal` of a file's
name are dropped). A module word the name already starts with is dropped
too: hub__admit_reply in hub_admit.c becomes admit__reply, hub__queue_put in
hub_store_queue.c becomes store_queue__put.

The new names replace the old ones in every C source, header and Markdown
file of the tree (build directories and .git excepted). A `static` name that
several files of hub/core each define for themselves is renamed in each of
them after that file; a file outside hub/core that defines a name of the
same spelling for itself (common/'s statics) keeps it. A name that would
collide with another, or with a name the tree already uses, keeps the module
word it would have lost; one that would still collide is left alone and
reported. Names in comments are renamed with the rest; a wildcard such as
`hub__lmdb_*` is not a name and stays as written.

Prints the mapping, one `old -> new  (file)` a line, and what it left alone.

    python3 scripts/rename-prefixes.py            # rename, from the repo root
    python3 scripts/rename-prefixes.py --dry-run  # only print the mapping
    python3 scripts/rename-prefixes.py --format   # also clang-format the changed lines
"""
import argparse
import os
import re
import subprocess
import sys

NAME = re.compile(r"\bhub__[A-Za-z0-9_]+")
SKIP_DIRS = {".git", "node_modules"}
TEXT_EXT = (".c", ".h", ".md")


def module_of(path):
    stem = os.path.splitext(os.path.basename(path))[0]
    if stem.startswith("hub_"):
        stem = stem[4:]
    if stem.endswith("_internal"):
        stem = stem[: -len("_internal")]
    return stem


def tree_files(root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x not in SKIP_DIRS and not x.startswith("build")]
        for f in files:
            if f.endswith(TEXT_EXT):
                out.append(os.path.join(d, f))
    return sorted(out)


def close_paren(text, i):
    """Index just past the ')' matching the '(' at text[i]."""
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    return len(text)


def definitions(path, text):
    """(name, is_static) for each hub__ name this file defines."""
    found = {}
    for m in NAME.finditer(text):
        name = m.group(0)
        line_start = text.rfind("\n", 0, m.start()) + 1
        line = text[line_start : text.find("\n", m.start())]
        head = text[line_start : m.start()]
        after = text[m.end() :].lstrip(" \t")
        static = line.lstrip().startswith("static")
        local = path.endswith(".c")  # a type or macro of a .c file is its own
        if re.match(r"\s*#\s*define\s+$", head):
            found[name] = found.get(name, False) or local  # a macro
            continue
        if re.match(r"\s*(typedef\s+)?(struct|enum|union)\s+$", head) and after.startswith("{"):
            found[name] = found.get(name, False) or local  # a type, even inside a body
            continue
        if line[:1].isspace() and not head.strip().startswith("}"):
            continue  # inside a body: a use
        if "extern" in head:
            continue
        if re.match(r"\s*(typedef\b.*|\}\s*)$", head) or (
            re.match(r"typedef\b", line.lstrip()) and "(" in head
        ):
            found[name] = found.get(name, False) or local  # a type (or function-pointer type)
            continue
        if after.startswith("("):
            # a function: defined here when its parameter list is followed by
            # a body (a prototype ends with ';')
            if not re.match(r"[\w\s\*]*$", head) or head.strip().startswith("return"):
                continue
            end = close_paren(text, m.end() + len(text[m.end() :]) - len(after))
            if text[end:].lstrip().startswith("{"):
                found[name] = found.get(name, False) or static
            continue
        if re.match(r"[=\[;]", after) and re.match(r"[\w\s\*]*$", head) and head.strip():
            if path.endswith(".c"):
                found[name] = found.get(name, False) or static  # a file-scope variable
    return found


def new_name(old, module, taken):
    rest = old[len("hub__") :]
    words = module.split("_")
    candidates = []
    # drop the longest run of the module's words the name already starts with
    # (its whole name, or its last words: queue_ in store_queue)
    for k in range(len(words), 0, -1):
        for run in (words[:k], words[-k:]):
            lead = "_".join(run) + "_"
            tail = rest[len(lead) :]
            # keep a word before a bare _t: hub__admit_t stays admit__admit_t
            if rest.startswith(lead) and tail[:1].isalpha() and tail != "t":
                candidates.append(module + "__" + tail)
    candidates.append(module + "__" + rest)
    for c in candidates:
        if c not in taken:
            return c
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=".", help="the repository (default: here)")
    ap.add_argument("--core", default="hub/core", help="where the hub__ names are defined")
    ap.add_argument("--dry-run", action="store_true", help="print the mapping, change nothing")
    ap.add_argument("--format", action="store_true", help="clang-format the changed lines")
    args = ap.parse_args()
    root = os.path.abspath(args.root)
    core = os.path.join(root, args.core)
    if not os.path.isdir(core):
        sys.exit(f"rename-prefixes: no {core}: run from the repository root or give --root")

    files = tree_files(root)
    texts = {}
    for f in files:
        with open(f, encoding="utf-8", errors="surrogateescape") as fh:
            texts[f] = fh.read()

    # who defines what: hub/core's names, and the files elsewhere that define
    # a name of the same spelling for themselves (common/'s statics)
    defined = {}  # name -> {file: is_file_local}
    elsewhere = {}  # name -> files outside hub/core defining it
    for f in files:
        if not f.endswith((".c", ".h")):
            continue
        for name, static in definitions(f, texts[f]).items():
            if f.startswith(core + os.sep):
                defined.setdefault(name, {})[f] = static
            else:
                elsewhere.setdefault(name, set()).add(f)

    # a name defined in a .c file belongs to it; one only in headers to the header
    taken = set()
    for t in texts.values():
        taken.update(re.findall(r"\b[A-Za-z_][A-Za-z0-9_]*__[A-Za-z0-9_]+", t))
    global_map = {}  # old -> (new, file)
    local_map = {}  # file -> {old: new}
    left = []
    for name in sorted(defined):
        where = defined[name]
        cfiles = [f for f in where if f.endswith(".c")]
        if len(cfiles) > 1 and all(where[f] for f in cfiles):
            for f in cfiles:  # each file's own static
                n = new_name(name, module_of(f), taken)
                if n is None:
                    left.append((name, f))
                    continue
                local_map.setdefault(f, {})[name] = n
                taken.add(n)
            continue
        owner = cfiles[0] if len(cfiles) == 1 else sorted(where)[0]
        if len(cfiles) > 1:
            left.append((name, "defined in " + ", ".join(sorted(cfiles))))
            continue
        n = new_name(name, module_of(owner), taken)
        if n is None:
            left.append((name, owner))
            continue
        global_map[name] = (n, owner)
        taken.add(n)

    used = set()
    for t in texts.values():
        used.update(NAME.findall(t))
    unresolved = sorted(used - set(defined))

    rel = lambda f: os.path.relpath(f, root)
    for old in sorted(global_map):
        print(f"{old} -> {global_map[old][0]}  ({rel(global_map[old][1])})")
    for f in sorted(local_map):
        for old in sorted(local_map[f]):
            print(f"{old} -> {local_map[f][old]}  ({rel(f)}, its own)")
    for name in sorted(global_map):
        for f in sorted(elsewhere.get(name, ())):
            print(f"left alone in {rel(f)}: its own {name}", file=sys.stderr)
    for name, why in left:
        print(f"left alone: {name} ({rel(why) if os.path.exists(why) else why})", file=sys.stderr)
    for name in unresolved:
        print(f"left alone: {name} (defined nowhere in {args.core})", file=sys.stderr)
    print(
        f"{len(global_map)} names renamed across the tree, "
        f"{sum(len(m) for m in local_map.values())} file-local ones, "
        f"{len(left) + len(unresolved)} left alone",
        file=sys.stderr,
    )
    if args.dry_run:
        return

    for f in files:
        text = texts[f]
        local = local_map.get(f, {})

        def sub(m):
            old = m.group(0)
            if old in local:
                return local[old]
            if old in global_map and f not in elsewhere.get(old, ()):
                return global_map[old][0]
            return old

        new = NAME.sub(sub, text)
        if new == text:
            continue
        with open(f, "w", encoding="utf-8", errors="surrogateescape") as fh:
            fh.write(new)
        if args.format and f.endswith((".c", ".h")):
            old_lines = text.split("\n")
            new_lines = new.split("\n")
            changed = [
                i + 1
                for i, (a, b) in enumerate(zip(old_lines, new_lines))
                if a != b
            ]
            cmd = ["clang-format", "-i"] + [f"--lines={i}:{i}" for i in changed] + [f]
            subprocess.run(cmd, check=True, cwd=root)


if __name__ == "__main__":
    main()
