// node-pg through turnout: simple and parameterized queries, a transaction,
// an error that leaves the connection usable. Prints OK on success.
// Run by tests/pg/pg_clients_itest.cc with PGHOST/PGPORT/PGUSER/PGPASSWORD/PGDATABASE set.
const { Client } = require('pg');

async function main() {
  const client = new Client();
  await client.connect();
  const one = await client.query('select 1 as one, $$two$$ as two');
  if (one.rows[0].one !== 1 || one.rows[0].two !== 'two') throw new Error('simple query: ' + JSON.stringify(one.rows));
  const p = await client.query('select $1::int + $2::int as sum, $3::text as t', [40, 2, 'hé']);
  if (p.rows[0].sum !== 42 || p.rows[0].t !== 'hé') throw new Error('parameterized: ' + JSON.stringify(p.rows));
  // A named statement, executed twice (Parse once, then Bind/Execute).
  for (let i = 0; i < 2; i++) {
    const r = await client.query({ name: 'add-one', text: 'select $1::int + 1 as v', values: [i] });
    if (r.rows[0].v !== i + 1) throw new Error('named statement');
  }
  await client.query('create temp table node_t(i int)');
  await client.query('begin');
  await client.query('insert into node_t select generate_series(1, 100)');
  await client.query('commit');
  const c = await client.query('select count(*)::int as n from node_t');
  if (c.rows[0].n !== 100) throw new Error('count');
  try {
    await client.query('select 1/0');
    throw new Error('expected an error');
  } catch (e) {
    if (!/division by zero/.test(e.message)) throw e;
  }
  const after = await client.query('select $1::text as ok', ['still-usable']);
  if (after.rows[0].ok !== 'still-usable') throw new Error('after error');
  await client.end();
  console.log('OK');
}

main().catch((e) => { console.error(e); process.exit(1); });
