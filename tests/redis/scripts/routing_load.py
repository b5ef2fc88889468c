"""A checked client workload through turnout (Debian's redis-py 4.3): THREADS
connections for SECONDS, each writing keys under PREFIX (SET, INCR, LPUSH,
SADD, HSET, a MULTI/EXEC pipeline) and reading back what it wrote. Every
reply is checked; an exception or a wrong value is an error.

  routing_load.py PORT PREFIX SECONDS [THREADS]

Prints one JSON object {"ops": n, "errors": e, "first_error": "..."}."""
import json
import sys
import threading
import time

import redis

port, prefix, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 4
lock = threading.Lock()
totals = {"ops": 0, "errors": 0, "first_error": ""}


def worker(n):
    r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    ops = errors = 0
    first = ""
    i = 0
    end = time.time() + seconds
    while time.time() < end:
        i += 1
        k = f"{prefix}{n}:{i % 50}"
        try:
            assert r.set(k + ":s", i) is True
            v = r.get(k + ":s")
            # Another thread never writes this key: the read sees this write.
            assert v == str(i).encode(), (k, v, i)
            r.incr(k + ":c")
            r.lpush(k + ":l", i)
            r.ltrim(k + ":l", 0, 20)
            r.sadd(k + ":set", i % 7)
            r.hset(k + ":h", "f%d" % (i % 5), i)
            p = r.pipeline(transaction=True)
            p.incr(k + ":tx").set(k + ":tx2", i).get(k + ":tx2")
            res = p.execute()
            assert res[2] == str(i).encode(), res
            ops += 11
        except Exception as e:  # noqa: BLE001 - every failure counts
            errors += 1
            if not first:
                first = repr(e)[:300]
            try:
                r = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
            except Exception:  # noqa: BLE001
                pass
    with lock:
        totals["ops"] += ops
        totals["errors"] += errors
        if first and not totals["first_error"]:
            totals["first_error"] = first


ts = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(json.dumps(totals))
