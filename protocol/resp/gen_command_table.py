#!/usr/bin/python3
"""Generates command_table_data.inc from a live Redis server.

Usage: /usr/bin/python3 protocol/resp/gen_command_table.py --port 6379 \
           [--host 127.0.0.1] [--password PW] [--out protocol/resp/command_table_data.inc]

It asks the server for COMMAND (the COMMAND INFO of every command, with
subcommands and key specs, Redis 7.0 layout) and COMMAND DOCS (for the
group) over a minimal RESP2 client, then writes the C++ tables that
command_table.cc includes. Turnout's own judgement (the single class, whether
routing treats a command as a write, whether its effect or reply may differ
between two servers holding the same data) is in the tables below, so a
regenerated file is reviewed in one diff.
"""

import argparse
import socket
import sys

# ---------------------------------------------------------------- RESP2 client


class Conn:
    def __init__(self, host, port):
        self.sock = socket.create_connection((host, port))
        self.buf = b""

    def call(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.sock.sendall(b"".join(out))
        return self._read()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(1 << 16)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            raise RuntimeError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RuntimeError("unexpected reply type %r" % t)


def as_map(flat):
    return {flat[i]: flat[i + 1] for i in range(0, len(flat), 2)} if flat else {}


# ------------------------------------------------------- turnout's judgement

TRANSACTION = {"multi", "exec", "discard", "watch", "unwatch"}

# Routing must send these to the write side although Redis does not flag
# them `write`: scripts may write (DESIGN §4: EVAL is a write, EVAL_RO a
# read), PUBLISH is a write (DESIGN §4), and a script must be loaded on every
# side that later runs EVALSHA.
ROUTED_AS_WRITE = {"eval", "evalsha", "fcall", "publish", "spublish",
                   "script|load", "script|flush"}

# Commands whose effect or reply can differ between two servers that hold
# the same data (on top of COMMAND's nondeterministic_output tip). A write in
# this set is applied on the authoritative side and its keys copied over
# (DESIGN §4); a read in it is not shadow-compared.
NONDETERMINISTIC = {
    # random choice
    "spop", "srandmember", "zrandmember", "hrandfield", "randomkey",
    # scripts and functions may do anything (and call the above)
    "eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro",
    # float formatting can differ between builds: Redis itself replicates
    # these as SET/HSET of the result (t_string.c incrbyfloatCommand)
    "incrbyfloat", "hincrbyfloat",
    # ids and idle times derive from the server clock
    "xadd", "xclaim", "xautoclaim", "xreadgroup", "xsetid",
    # blocking pops: which client gets the element depends on timing
    "blpop", "brpop", "brpoplpush", "blmove", "blmpop", "bzpopmin",
    "bzpopmax", "bzmpop",
    # clocks and server-local state
    "time", "lastsave", "ttl", "pttl", "object|idletime", "object|freq",
}

FLAG_BITS = [
    "write", "readonly", "denyoom", "module", "admin", "pubsub", "noscript",
    "blocking", "loading", "stale", "skip_monitor", "skip_slowlog", "asking",
    "fast", "no_auth", "may_replicate", "no_mandatory_keys",
    "no_async_loading", "no_multi", "movablekeys", "allow_busy",
    # turnout-derived bits (from tips)
    "nondeterministic_output", "nondeterministic_output_order",
]

KEY_FLAG_BITS = ["RO", "RW", "OW", "RM", "access", "update", "insert",
                 "delete", "not_key", "incomplete", "variable_flags"]


def camel(s):
    return "k" + "".join(p.capitalize() for p in s.split("_"))


def command_class(name, flags, group, info):
    if name in TRANSACTION:
        return "kTransaction"
    if group == "scripting":
        return "kScripting"
    if name in ("publish", "spublish"):
        return "kWrite"
    if "pubsub" in flags or group == "pubsub":
        return "kPubSub"
    # XREAD/XREADGROUP block only with BLOCK: IsBlockingInvocation() decides.
    # WAIT blocks until replicas acknowledge (flags say nothing about it).
    if ("blocking" in flags and name not in ("xread", "xreadgroup")) or name == "wait":
        return "kBlocking"
    if "admin" in flags:
        return "kAdmin"
    if "write" in flags:
        return "kWrite"
    if "readonly" in flags:
        return "kRead"
    # READONLY/READWRITE/ASKING are cluster-group connection state.
    if group == "connection" or (group == "cluster" and "@connection" in info[6]):
        return "kConnection"
    if info[3] > 0 or info[8]:
        return "kRead"
    return "kAdmin"


def cstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def key_spec_init(spec):
    m = as_map(spec)
    bits = [k for k in m.get("flags", [])]
    for b in bits:
        if b not in KEY_FLAG_BITS:
            sys.exit("unknown key spec flag %r" % b)
    flags = " | ".join("key_flag::" + camel(b if b.islower() else b.lower()) for b in bits) or "0"
    bs = as_map(m["begin_search"])
    fk = as_map(m["find_keys"])
    bss = as_map(bs["spec"]) if isinstance(bs["spec"], list) else {}
    fks = as_map(fk["spec"]) if isinstance(fk["spec"], list) else {}
    fields = [".flags = %s" % flags]
    if bs["type"] == "index":
        fields += [".begin = KeySpec::Begin::kIndex", ".index = %d" % bss["index"]]
    elif bs["type"] == "keyword":
        fields += [".begin = KeySpec::Begin::kKeyword",
                   ".keyword = %s" % cstr(bss["keyword"]),
                   ".startfrom = %d" % bss["startfrom"]]
    else:
        fields += [".begin = KeySpec::Begin::kUnknown"]
    if fk["type"] == "range":
        fields += [".find = KeySpec::Find::kRange", ".lastkey = %d" % fks["lastkey"],
                   ".limit = %d" % fks["limit"], ".keystep = %d" % fks["keystep"]]
    elif fk["type"] == "keynum":
        fields += [".find = KeySpec::Find::kKeynum", ".keynumidx = %d" % fks["keynumidx"],
                   ".firstkey = %d" % fks["firstkey"], ".keystep = %d" % fks["keystep"]]
    else:
        fields += [".find = KeySpec::Find::kUnknown"]
    return "{" + ", ".join(fields) + "}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=6379)
    ap.add_argument("--password", default="")
    ap.add_argument("--out", default="protocol/resp/command_table_data.inc")
    args = ap.parse_args()

    conn = Conn(args.host, args.port)
    if args.password:
        conn.call("AUTH", args.password)
    version = ""
    for line in conn.call("INFO", "server").splitlines():
        if line.startswith("redis_version:"):
            version = line.split(":", 1)[1]
    infos = conn.call("COMMAND")
    docs = as_map(conn.call("COMMAND", "DOCS"))

    key_specs = []     # initializer strings
    subcommands = []   # (parent, initializer)
    commands = []

    def emit(info, doc, parent):
        full = info[0].lower()
        name = full.split("|", 1)[1] if "|" in full else full
        flags = list(info[2])
        for f in flags:
            if f not in FLAG_BITS:
                sys.exit("unknown command flag %r of %s" % (f, full))
        tips = info[7] or []
        for tip in tips:
            if tip in ("nondeterministic_output", "nondeterministic_output_order"):
                flags.append(tip)
        group = doc.get("group", "") if doc else ""
        klass = command_class(full, flags, group, info)
        is_write = "write" in flags or full in ROUTED_AS_WRITE
        deterministic = not ("nondeterministic_output" in tips or full in NONDETERMINISTIC)
        ks_begin = len(key_specs)
        for spec in info[8] or []:
            key_specs.append(key_spec_init(spec))
        ks_count = len(key_specs) - ks_begin
        sub_span = "{}"
        if len(info) > 9 and info[9]:
            subdocs = as_map(doc.get("subcommands", [])) if doc else {}
            subs = sorted(info[9], key=lambda s: s[0].upper())
            begin = len(subcommands)
            for sub in subs:
                subdoc = as_map(subdocs.get(sub[0], [])) if sub[0] in subdocs else {}
                subcommands.append(emit(sub, subdoc, full))
            sub_span = "std::span<const CommandInfo>(kSubcommands + %d, %d)" % (begin, len(subs))
        flag_expr = " | ".join("cmd_flag::" + camel(f) for f in flags) or "0"
        spans = ("std::span<const KeySpec>(kKeySpecs + %d, %d)" % (ks_begin, ks_count)
                 if ks_count else "{}")
        return ("{.name = %s, .full_name = %s, .group = %s, .arity = %d, "
                ".command_class = CommandClass::%s, .flags = %s, .first_key = %d, "
                ".last_key = %d, .key_step = %d, .is_write = %s, .deterministic = %s, "
                ".key_specs = %s, .subcommands = %s}" % (
                    cstr(name.upper()), cstr(full.upper()), cstr(group), info[1], klass,
                    flag_expr, info[3], info[4], info[5], str(is_write).lower(),
                    str(deterministic).lower(), spans, sub_span))

    for info in sorted(infos, key=lambda i: i[0].upper()):
        doc = as_map(docs.get(info[0], []))
        commands.append(emit(info, doc, None))

    with open(args.out, "w") as f:
        f.write("// Generated by protocol/resp/gen_command_table.py from redis_version %s\n"
                "// (COMMAND and COMMAND DOCS). Do not edit; regenerate.\n"
                "// %d commands, %d subcommands, %d key specs.\n\n"
                % (version, len(commands), len(subcommands), len(key_specs)))
        f.write("// clang-format off\n")
        f.write("inline constexpr KeySpec kKeySpecs[] = {\n")
        for ks in key_specs:
            f.write("  %s,\n" % ks)
        f.write("};\n\n")
        f.write("inline constexpr CommandInfo kSubcommands[] = {\n")
        for s in subcommands:
            f.write("  %s,\n" % s)
        f.write("};\n\n")
        f.write("inline constexpr CommandInfo kCommands[] = {\n")
        for c in commands:
            f.write("  %s,\n" % c)
        f.write("};\n")
        f.write("// clang-format on\n")
    print("wrote %s: %d commands, %d subcommands, %d key specs (redis %s)"
          % (args.out, len(commands), len(subcommands), len(key_specs), version))


if __name__ == "__main__":
    main()
