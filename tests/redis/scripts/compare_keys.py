"""Key-by-key comparison of two Redis servers (Debian's redis-py 4.3),
independent of DUMP encodings: every key matching PATTERN on either side is
read by type (strings, lists, sets, sorted sets with scores, hashes,
streams) and compared, with "has a TTL" compared too.

  compare_keys.py OLD_ADDR NEW_ADDR PATTERN   (ADDR: [user:password@]port[/db])

Prints one JSON object {"old": n, "new": m, "differences": [...]} and exits
0 when both sides hold the same data, 1 otherwise."""
import json
import sys

import redis


def connect(addr):
    user = password = None
    db = 0
    if "@" in addr:
        cred, addr = addr.rsplit("@", 1)
        user, password = cred.split(":", 1)
    if "/" in addr:
        addr, db = addr.split("/", 1)
    return redis.Redis(host="127.0.0.1", port=int(addr), db=int(db), username=user, password=password)


def keys(r, pattern):
    return set(r.scan_iter(match=pattern, count=1000))


def value(r, key):
    t = r.type(key).decode()
    if t == "string":
        v = r.get(key)
    elif t == "list":
        v = r.lrange(key, 0, -1)
    elif t == "set":
        v = sorted(r.smembers(key))
    elif t == "zset":
        v = r.zrange(key, 0, -1, withscores=True)
    elif t == "hash":
        v = sorted(r.hgetall(key).items())
    elif t == "stream":
        v = r.xrange(key)
    elif t == "none":
        v = None
    else:
        v = r.dump(key)
    return t, v, r.pttl(key) > 0


def main():
    old, new, pattern = connect(sys.argv[1]), connect(sys.argv[2]), sys.argv[3]
    ko, kn = keys(old, pattern), keys(new, pattern)
    diffs = []
    for k in sorted(ko | kn):
        a, b = value(old, k), value(new, k)
        if a != b:
            diffs.append({"key": k.decode(errors="replace"), "old": repr(a)[:200], "new": repr(b)[:200]})
    print(json.dumps({"old": len(ko), "new": len(kn), "differences": diffs[:50], "count": len(diffs)}))
    sys.exit(0 if not diffs else 1)


main()
