// node-redis (v4) through turnout: basic commands, a MULTI pipeline, hashes,
// pub/sub on a second connection. Prints OK on success.
// Usage: node redis_client_test.js [PORT [KEY_PREFIX]] (PORT defaults to
// $TURNOUT_PORT); every key and channel starts with KEY_PREFIX, so runs under
// different routing modes in parallel do not meet.
const assert = require("assert");
const { createClient } = require("redis");

const port = process.argv[2] || process.env.TURNOUT_PORT;
const P = process.argv[3] || "";

async function main() {
  const url = `redis://127.0.0.1:${port}`;
  const client = createClient({ url, name: "node-redis-test" });
  client.on("error", (e) => { console.error("client error", e); process.exit(1); });
  await client.connect();
  assert.strictEqual(await client.ping(), "PONG");
  await client.set(P + "node:key", "value");
  assert.strictEqual(await client.get(P + "node:key"), "value");
  assert.strictEqual(await client.incrBy(P + "node:counter", 5) > 0, true);
  await client.del(P + "node:hash");
  await client.hSet(P + "node:hash", { a: "1", b: "2" });
  assert.deepStrictEqual({ ...(await client.hGetAll(P + "node:hash")) }, { a: "1", b: "2" });
  const replies = await client.multi().set(P + "node:m", "1").incr(P + "node:m").get(P + "node:m").exec();
  assert.deepStrictEqual(replies, ["OK", 2, "2"]);
  // Many commands in flight at once (auto-pipelined by the client).
  const many = await Promise.all(Array.from({ length: 500 }, (_, i) => client.echo(`e${i}`)));
  many.forEach((v, i) => assert.strictEqual(v, `e${i}`));
  assert.strictEqual(await client.clientGetName(), "node-redis-test");

  const sub = client.duplicate();
  await sub.connect();
  const got = new Promise((resolve) => sub.subscribe(P + "node:chan", (message) => resolve(message)));
  await new Promise((r) => setTimeout(r, 100));
  await client.publish(P + "node:chan", "hello-node");
  assert.strictEqual(await got, "hello-node");
  await sub.unsubscribe(P + "node:chan");
  await sub.quit();
  await client.quit();
  console.log("OK");
}

main().catch((e) => { console.error(e); process.exit(1); });
