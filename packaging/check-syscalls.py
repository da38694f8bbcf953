#!/usr/bin/env python3
"""Checks that kwatch's system calls pass the unit's SystemCallFilter, without systemd running.

Usage: check-syscalls.py UNIT TRACE...
UNIT is the service file; each TRACE is `strace -f -o TRACE` output of a kwatch run. The unit's SystemCallFilter=
lines are resolved the way systemd does (allow lists add up, `~` lists take away; groups expanded with
`systemd-analyze syscall-filter`); every call a trace shows must be allowed. Exits 1 naming the calls that are
not, so a new dependency that makes a new call (a new thread pool, a new I/O API) cannot be killed by seccomp in
production first.
"""
import re
import subprocess
import sys


def groups():
    """{'@name': [syscall or @group, ...]} as this systemd knows them."""
    out = subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout
    table, current = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            current = line.strip()
            table[current] = []
        elif current and line.strip() and not line.strip().startswith("#"):
            table[current].append(line.strip())
    return table


def expand(name, table):
    if not name.startswith("@"):
        return {name}
    calls = set()
    for member in table.get(name, []):
        calls |= expand(member, table)
    return calls


def allowed(unit, table):
    allow, deny = None, set()
    for line in open(unit, encoding="utf-8"):
        m = re.match(r"\s*SystemCallFilter=(~?)(.*)", line)
        if not m:
            continue
        names = set()
        for word in m.group(2).split():
            names |= expand(word.split(":")[0], table)
        if m.group(1):
            deny |= names
        else:
            allow = names if allow is None else allow | names
    if allow is None:
        sys.exit(f"{unit}: no SystemCallFilter allow list")
    return allow - deny


def traced(path):
    calls = set()
    for line in open(path, encoding="utf-8", errors="replace"):
        # `PID name(args...) = result`, `PID <... name resumed>...`; signals and exits have no call.
        m = re.match(r"\s*(?:\d+\s+)?(?:<\.\.\.\s+)?([a-z_0-9]+)(?:\(|\s+resumed>)", line)
        if m:
            calls.add(m.group(1))
    return calls


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    table = groups()
    ok = allowed(sys.argv[1], table)
    used = set()
    for trace in sys.argv[2:]:
        used |= traced(trace)
    # execve is made by strace's child before kwatch runs; systemd applies the filter after it, too.
    used.discard("execve")
    refused = sorted(used - ok)
    if refused:
        print(f"check-syscalls: {sys.argv[1]} would refuse: {', '.join(refused)}", file=sys.stderr)
        sys.exit(1)
    print(f"check-syscalls: all {len(used)} system calls kwatch made pass {sys.argv[1]}'s filter")


main()
