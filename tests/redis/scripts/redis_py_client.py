"""redis-py 4.3 (Debian) through turnout: pipeline, WATCH transaction with a
competing writer, pub/sub with a publisher on another connection, a large
value. Prints OK on success. Port in TURNOUT_PORT; every key and channel
starts with KEY_PREFIX (default empty), so runs in parallel do not meet."""
import os
import threading
import time

import redis

port = int(os.environ["TURNOUT_PORT"])
P = os.environ.get("KEY_PREFIX", "")
r = redis.Redis(host="127.0.0.1", port=port, client_name="redis-py-test")
assert r.ping()
assert r.client_getname() in ("redis-py-test", b"redis-py-test")

# Pipeline without a transaction: 2000 commands, replies in order.
p = r.pipeline(transaction=False)
for i in range(1000):
    p.set(f"{P}py:p:{i}", i)
    p.get(f"{P}py:p:{i}")
res = p.execute()
assert res[0::2] == [True] * 1000
assert res[1::2] == [str(i).encode() for i in range(1000)]

# Transaction pipeline (MULTI/EXEC).
r.delete(f"{P}py:tx")
p = r.pipeline()
p.incr(f"{P}py:tx").incr(f"{P}py:tx").get(f"{P}py:tx")
assert p.execute() == [1, 2, b"2"]

# WATCH: a competing writer makes the first attempt fail, the retry succeed.
r.set(f"{P}py:balance", 100)
other = redis.Redis(host="127.0.0.1", port=port)
attempts = 0
with r.pipeline() as p:
    while True:
        try:
            p.watch(f"{P}py:balance")
            balance = int(p.get(f"{P}py:balance"))
            attempts += 1
            if attempts == 1:
                other.incrby(f"{P}py:balance", 5)
            p.multi()
            p.set(f"{P}py:balance", balance - 30)
            p.execute()
            break
        except redis.WatchError:
            continue
assert attempts == 2, attempts
assert int(r.get(f"{P}py:balance")) == 75

# Pub/sub: subscriber here, publisher on another connection.
ps = r.pubsub()
ps.subscribe(f"{P}py:chan")
ps.psubscribe(f"{P}py:pat:*")
assert ps.get_message(timeout=2)["type"] == "subscribe"
assert ps.get_message(timeout=2)["type"] == "psubscribe"
def publish():
    time.sleep(0.1)
    other.publish(f"{P}py:chan", "one")
    other.publish(f"{P}py:pat:x", "two")
threading.Thread(target=publish).start()
msgs = []
deadline = time.time() + 5
while len(msgs) < 2 and time.time() < deadline:
    m = ps.get_message(timeout=1)
    if m and m["type"] in ("message", "pmessage"):
        msgs.append(m["data"])
assert msgs == [b"one", b"two"], msgs
ps.close()

# A value far larger than turnout's buffers, both ways.
big = os.urandom(4 * 1024 * 1024)
r.set(f"{P}py:big", big)
assert r.get(f"{P}py:big") == big
r.delete(f"{P}py:big")
print("OK")
