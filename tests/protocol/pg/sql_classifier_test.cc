// Table-driven tests of the SQL lexer and classifier.

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "protocol/pg/sql_classifier.h"
#include "protocol/pg/sql_lexer.h"

namespace turnout::protocol::pg {
namespace {

constexpr StatementClass R = StatementClass::kRead;
constexpr StatementClass W = StatementClass::kWrite;
constexpr StatementClass D = StatementClass::kDdl;
constexpr StatementClass T = StatementClass::kTxnControl;
constexpr StatementClass S = StatementClass::kSession;
constexpr StatementClass A = StatementClass::kAdmin;
constexpr StatementClass U = StatementClass::kUnknown;
constexpr DdlRisk N = DdlRisk::kNone;
constexpr DdlRisk SAFE = DdlRisk::kSafe;
constexpr DdlRisk MED = DdlRisk::kMedium;
constexpr DdlRisk HIGH = DdlRisk::kHigh;

struct Case {
  const char* sql;
  StatementClass cls;
  DdlRisk risk;
  const char* tables;  // normalized, comma-separated, any order
  bool order_by;
};

std::string SortedTables(const StatementInfo& s) {
  std::vector<std::string> v;
  for (const TableRef& t : s.tables) v.push_back(t.Normalized());
  std::sort(v.begin(), v.end());
  return absl::StrJoin(v, ",");
}

std::string Sorted(const char* csv) {
  std::vector<std::string> v = absl::StrSplit(csv, ',', absl::SkipEmpty());
  std::sort(v.begin(), v.end());
  return absl::StrJoin(v, ",");
}

void RunCases(const std::vector<Case>& cases) {
  SqlClassifier classifier;
  Classification c;
  for (const Case& k : cases) {
    classifier.Classify(k.sql, &c);
    ASSERT_EQ(c.statements.size(), 1u) << k.sql;
    const StatementInfo& s = c.statements[0];
    EXPECT_EQ(ToString(s.statement_class), ToString(k.cls)) << k.sql;
    EXPECT_EQ(ToString(s.ddl_risk), ToString(k.risk)) << k.sql;
    EXPECT_EQ(SortedTables(s), Sorted(k.tables)) << k.sql;
    EXPECT_EQ(s.has_order_by, k.order_by) << k.sql;
    EXPECT_EQ(c.statement_class, s.statement_class) << k.sql;
  }
}

TEST(SqlClassifier, Reads) {
  RunCases({
      {"SELECT 1", R, N, "", false},
      {"select * from orders", R, N, "orders", false},
      {"SELECT * FROM Orders", R, N, "orders", false},
      {"SELECT * FROM \"Orders\"", R, N, "Orders", false},
      {"SELECT * FROM public.orders", R, N, "public.orders", false},
      {"SELECT * FROM Public.\"Order Items\"", R, N, "public.Order Items", false},
      {"SELECT * FROM mydb.public.orders", R, N, "public.orders", false},
      {"SELECT * FROM orders o WHERE o.id = 1", R, N, "orders", false},
      {"SELECT * FROM orders AS o WHERE o.id = 1", R, N, "orders", false},
      {"SELECT * FROM orders ORDER BY id", R, N, "orders", true},
      {"select * from orders order by id desc limit 10", R, N, "orders", true},
      {"SELECT * FROM orders LIMIT 10", R, N, "orders", false},
      {"SELECT a, b FROM t1, t2 WHERE t1.id = t2.id", R, N, "t1,t2", false},
      {"SELECT * FROM t1 a, t2 b, t3 AS c", R, N, "t1,t2,t3", false},
      {"SELECT * FROM a JOIN b ON a.id = b.id", R, N, "a,b", false},
      {"SELECT * FROM a LEFT JOIN b USING (id) RIGHT OUTER JOIN c ON true", R, N, "a,b,c", false},
      {"SELECT * FROM a INNER JOIN b ON a.x=b.x, c WHERE 1=1", R, N, "a,b,c", false},
      {"SELECT * FROM a CROSS JOIN b NATURAL JOIN c FULL JOIN d ON d.x = a.x", R, N, "a,b,c,d", false},
      {"SELECT * FROM (SELECT * FROM inner_t) sub", R, N, "inner_t", false},
      {"SELECT * FROM (SELECT * FROM inner_t ORDER BY x) sub", R, N, "inner_t", false},
      {"SELECT * FROM t WHERE id IN (SELECT id FROM u)", R, N, "t,u", false},
      {"SELECT * FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)", R, N, "t,u", false},
      {"SELECT (SELECT max(x) FROM u) FROM t", R, N, "t,u", false},
      {"SELECT extract(year FROM created_at) FROM orders", R, N, "orders", false},
      {"SELECT substring(name FROM 2 FOR 3) FROM users", R, N, "users", false},
      {"SELECT trim(both ' ' FROM name) FROM users", R, N, "users", false},
      {"SELECT * FROM t WHERE a IS DISTINCT FROM b", R, N, "t", false},
      {"SELECT * FROM t WHERE a IS NOT DISTINCT FROM b", R, N, "t", false},
      {"SELECT * FROM generate_series(1, 10) g", R, N, "", false},
      {"SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.t = t.id) x", R, N, "t,u", false},
      {"SELECT * FROM t, unnest(t.arr) AS x", R, N, "t", false},
      {"SELECT * FROM ONLY parent", R, N, "parent", false},
      {"SELECT * FROM parent *", R, N, "parent", false},
      {"SELECT count(*) FROM t GROUP BY a HAVING count(*) > 1", R, N, "t", false},
      {"SELECT a FROM t UNION SELECT a FROM u", R, N, "t,u", false},
      {"SELECT a FROM t UNION ALL SELECT a FROM u ORDER BY a", R, N, "t,u", true},
      {"SELECT a FROM t INTERSECT SELECT a FROM u", R, N, "t,u", false},
      {"SELECT a FROM t EXCEPT SELECT a FROM u", R, N, "t,u", false},
      {"(SELECT a FROM t) UNION (SELECT a FROM u) ORDER BY 1", R, N, "t,u", true},
      {"(SELECT a FROM t ORDER BY a)", R, N, "t", false},
      {"SELECT row_number() OVER (ORDER BY id) FROM t", R, N, "t", false},
      {"SELECT string_agg(name, ',' ORDER BY name) FROM t", R, N, "t", false},
      {"SELECT sum(x) OVER w FROM t WINDOW w AS (ORDER BY y)", R, N, "t", false},
      {"SELECT * FROM t ORDER BY a NULLS LAST", R, N, "t", true},
      {"SELECT DISTINCT ON (a) a, b FROM t ORDER BY a, b", R, N, "t", true},
      {"SELECT * FROM t FETCH FIRST 5 ROWS ONLY", R, N, "t", false},
      {"SELECT * FROM t OFFSET 5", R, N, "t", false},
      {"SELECT * FROM t TABLESAMPLE SYSTEM (10)", R, N, "t", false},
      {"SELECT now()", R, N, "", false},
      {"SELECT currval('s')", R, N, "", false},
      {"SELECT lastval()", R, N, "", false},
      {"SELECT pg_sleep(1)", R, N, "", false},
      {"SELECT version()", R, N, "", false},
      {"SELECT $1::int", R, N, "", false},
      {"SELECT 'FROM x' FROM t", R, N, "t", false},
      {"SELECT 'a''b; DELETE FROM x' FROM t", R, N, "t", false},
      {"SELECT E'it\\'s; DROP TABLE x' FROM t", R, N, "t", false},
      {"SELECT $$ DELETE FROM x $$ FROM t", R, N, "t", false},
      {"SELECT $tag$ ; UPDATE x SET a = 1 $tag$ FROM t", R, N, "t", false},
      {"SELECT \"from\" FROM t", R, N, "t", false},
      {"SELECT 1 -- DELETE FROM x\n FROM t", R, N, "t", false},
      {"SELECT /* DELETE FROM x */ 1 FROM t", R, N, "t", false},
      {"SELECT /* outer /* nested DELETE */ still comment */ 1 FROM t", R, N, "t", false},
      {"/* leading */ SELECT 1 FROM t", R, N, "t", false},
      {"-- leading\nSELECT 1", R, N, "", false},
      {"  \n\tselect 1", R, N, "", false},
      {"SELECT U&'d\\0061t\\+000061' FROM t", R, N, "t", false},
      {"SELECT * FROM U&\"d\\0061t\\+000061\"", R, N, "d\\0061t\\+000061", false},
      {"SELECT B'101', X'ff', N'text' FROM t", R, N, "t", false},
      {"SELECT 1.5e10, .5, 0x1F, 1_000 FROM t", R, N, "t", false},
      {"SELECT a::text FROM t", R, N, "t", false},
      {"SELECT arr[1] FROM t", R, N, "t", false},
      {"SELECT * FROM t WHERE a @> b AND c <-> d < 5", R, N, "t", false},
      {"SELECT * FROM t WHERE a--comment\n= 1", R, N, "t", false},
      {"SELECT * FROM t WHERE a=-1", R, N, "t", false},
      {"VALUES (1), (2)", R, N, "", false},
      {"VALUES (1), (2) ORDER BY 1", R, N, "", true},
      {"TABLE orders", R, N, "orders", false},
      {"TABLE ONLY orders", R, N, "orders", false},
      {"SHOW search_path", R, N, "", false},
      {"SHOW ALL", R, N, "", false},
      {"SELECT * FROM t1 JOIN (t2 JOIN t3 ON t2.a = t3.a) ON t1.a = t2.a", R, N, "t1,t2,t3", false},
      {"SELECT * FROM \"weird\"\"name\"", R, N, "weird\"name", false},
      {"SELECT * FROM pg_catalog.pg_class", R, N, "pg_catalog.pg_class", false},
      {"SELECT * FROM information_schema.tables", R, N, "information_schema.tables", false},
      {"SELECT * FROM t WHERE x = ANY(ARRAY(SELECT y FROM u))", R, N, "t,u", false},
      {"SELECT * FROM t WHERE (a, b) IN (SELECT a, b FROM u)", R, N, "t,u", false},
      {"SELECT CASE WHEN a THEN 1 ELSE 2 END FROM t", R, N, "t", false},
      {"SELECT * FROM data, key, type", R, N, "data,key,type", false},
      {"SELECT * FROM ROWS FROM (generate_series(1,2)) x", R, N, "", false},
      {"SELECT * FROM t FOR SYSTEM_TIME", R, N, "t", false},
      {"select x from t where y = 'for update'", R, N, "t", false},
  });
}

TEST(SqlClassifier, WithQueries) {
  RunCases({
      {"WITH x AS (SELECT * FROM t) SELECT * FROM x", R, N, "t", false},
      {"WITH x AS (SELECT * FROM t) SELECT * FROM x ORDER BY 1", R, N, "t", true},
      {"WITH x AS (SELECT * FROM t ORDER BY 1) SELECT * FROM x", R, N, "t", false},
      {"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM r WHERE n < 5) SELECT * FROM r", R, N, "",
       false},
      {"WITH a AS (SELECT 1), b AS (SELECT * FROM a) SELECT * FROM b, c", R, N, "c", false},
      {"WITH x AS MATERIALIZED (SELECT * FROM t) SELECT * FROM x", R, N, "t", false},
      {"WITH x AS NOT MATERIALIZED (SELECT * FROM t) SELECT * FROM x", R, N, "t", false},
      {"WITH d AS (DELETE FROM t WHERE a RETURNING *) SELECT * FROM d", W, N, "t", false},
      {"WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u", W, N, "t", false},
      {"WITH i AS (INSERT INTO t VALUES (1) RETURNING id) SELECT id FROM i", W, N, "t", false},
      {"WITH x AS (SELECT * FROM src) INSERT INTO dst SELECT * FROM x", W, N, "dst,src", false},
      {"WITH x AS (SELECT id FROM src) UPDATE dst SET a = 1 FROM x WHERE dst.id = x.id", W, N, "dst,src",
       false},
      {"WITH x AS (SELECT id FROM src) DELETE FROM dst USING x WHERE dst.id = x.id", W, N, "dst,src", false},
      {"WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved", W, N, "a,b", false},
      {"WITH x AS (SELECT nextval('s')) SELECT * FROM x", W, N, "", false},
      {"WITH x AS (SELECT * FROM t FOR UPDATE) SELECT * FROM x", W, N, "t", false},
      {"WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n+1 FROM t WHERE n < 100) "
       "SEARCH DEPTH FIRST BY n SET ordercol SELECT * FROM t ORDER BY ordercol",
       R, N, "", true},
      {"WITH x(a, b) AS (VALUES (1, 2)) SELECT * FROM x", R, N, "", false},
      {"WITH \"X\" AS (SELECT 1) SELECT * FROM \"X\"", R, N, "", false},
      {"WITH x AS (SELECT 1) SELECT * FROM \"X\"", R, N, "X", false},
      {"WITH x AS (MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE RETURNING *) SELECT 1", W, N,
       "s,t", false},
      {"WITH x AS (SELECT 1", U, N, "", false},
      {"WITH SELECT 1", U, N, "", false},
  });
}

TEST(SqlClassifier, Writes) {
  RunCases({
      {"INSERT INTO orders VALUES (1)", W, N, "orders", false},
      {"insert into Orders (id, name) values ($1, $2)", W, N, "orders", false},
      {"INSERT INTO public.orders SELECT * FROM staging", W, N, "public.orders,staging", false},
      {"INSERT INTO t AS x (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = x.a + 1", W, N, "t", false},
      {"INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", W, N, "t", false},
      {"INSERT INTO t VALUES (1) RETURNING id", W, N, "t", false},
      {"INSERT INTO t DEFAULT VALUES", W, N, "t", false},
      {"UPDATE orders SET status = 'x' WHERE id = 1", W, N, "orders", false},
      {"UPDATE ONLY orders SET a = 1", W, N, "orders", false},
      {"UPDATE orders o SET a = 1 FROM customers c WHERE o.cid = c.id", W, N, "customers,orders", false},
      {"UPDATE t SET a = (SELECT max(b) FROM u)", W, N, "t,u", false},
      {"UPDATE t SET (a, b) = (1, 2) WHERE c RETURNING a, b", W, N, "t", false},
      {"DELETE FROM orders WHERE id = 1", W, N, "orders", false},
      {"DELETE FROM ONLY orders", W, N, "orders", false},
      {"DELETE FROM orders o USING customers c WHERE o.cid = c.id", W, N, "customers,orders", false},
      {"DELETE FROM t WHERE id IN (SELECT id FROM u)", W, N, "t,u", false},
      {"DELETE FROM t WHERE CURRENT OF c", W, N, "t", false},
      {"MERGE INTO target t USING source s ON t.id = s.id WHEN MATCHED THEN UPDATE SET v = s.v "
       "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.v)",
       W, N, "source,target", false},
      {"SELECT * FROM t FOR UPDATE", W, N, "t", false},
      {"SELECT * FROM t FOR UPDATE SKIP LOCKED", W, N, "t", false},
      {"SELECT * FROM t FOR UPDATE OF t NOWAIT", W, N, "t", false},
      {"SELECT * FROM t FOR NO KEY UPDATE", W, N, "t", false},
      {"SELECT * FROM t FOR SHARE", W, N, "t", false},
      {"SELECT * FROM t FOR KEY SHARE", W, N, "t", false},
      {"SELECT * FROM t ORDER BY id FOR UPDATE", W, N, "t", true},
      {"SELECT * FROM (SELECT * FROM t FOR UPDATE) x", W, N, "t", false},
      {"SELECT * INTO newtable FROM t", W, N, "newtable,t", false},
      {"SELECT a, b INTO TEMP tmp FROM t", W, N, "t,tmp", false},
      {"SELECT * INTO UNLOGGED TABLE x FROM t", W, N, "t,x", false},
      {"SELECT nextval('orders_id_seq')", W, N, "", false},
      {"SELECT NEXTVAL('orders_id_seq')", W, N, "", false},
      {"SELECT pg_catalog.nextval('s')", W, N, "", false},
      {"SELECT setval('s', 10)", W, N, "", false},
      {"SELECT id, nextval('s') FROM t", W, N, "t", false},
      {"SELECT pg_advisory_lock(1)", W, N, "", false},
      {"SELECT pg_try_advisory_lock(1)", W, N, "", false},
      {"SELECT pg_advisory_xact_lock(42)", W, N, "", false},
      {"SELECT pg_advisory_unlock(1)", W, N, "", false},
      {"SELECT pg_advisory_unlock_all()", W, N, "", false},
      {"SELECT pg_notify('c', 'x')", W, N, "", false},
      {"SELECT set_config('a.b', 'c', false)", W, N, "", false},
      {"SELECT txid_current()", W, N, "", false},
      {"SELECT lo_create(0)", W, N, "", false},
      {"SELECT pg_terminate_backend(123)", W, N, "", false},
      {"SELECT * FROM t WHERE x = nextval('s')", W, N, "t", false},
      {"SELECT 'nextval(1)' FROM t", R, N, "t", false},
      {"SELECT nextval FROM t", R, N, "t", false},
      {"VALUES (nextval('s'))", W, N, "", false},
      {"CALL my_proc(1, 2)", W, N, "", false},
      {"DO $$ BEGIN PERFORM 1; END $$", W, N, "", false},
      {"DO LANGUAGE plpgsql $body$ BEGIN DELETE FROM x; END $body$", W, N, "", false},
      {"NOTIFY orders_changed, 'payload'", W, N, "", false},
      {"LOCK TABLE orders IN ACCESS EXCLUSIVE MODE", W, N, "orders", false},
      {"LOCK orders, items", W, N, "items,orders", false},
      {"LOCK TABLE ONLY orders IN SHARE MODE", W, N, "orders", false},
      {"COPY orders FROM STDIN", W, N, "orders", false},
      {"COPY orders (id, name) FROM STDIN WITH (FORMAT csv)", W, N, "orders", false},
      {"COPY public.orders FROM '/tmp/x.csv'", W, N, "public.orders", false},
      {"copy orders from stdin (format binary)", W, N, "orders", false},
      {"COPY (INSERT INTO t VALUES (1) RETURNING *) TO STDOUT", W, N, "t", false},
  });
}

TEST(SqlClassifier, CopyAndExplain) {
  RunCases({
      {"COPY orders TO STDOUT", R, N, "orders", false},
      {"COPY orders (id) TO STDOUT WITH (FORMAT binary)", R, N, "orders", false},
      {"COPY (SELECT * FROM orders) TO STDOUT", R, N, "orders", false},
      {"COPY (SELECT * FROM orders ORDER BY id) TO STDOUT", R, N, "orders", false},
      {"COPY orders", U, N, "orders", false},
      {"EXPLAIN SELECT * FROM t", R, N, "t", false},
      {"EXPLAIN DELETE FROM t", R, N, "t", false},
      {"EXPLAIN UPDATE t SET a = 1", R, N, "t", false},
      {"EXPLAIN VERBOSE INSERT INTO t VALUES (1)", R, N, "t", false},
      {"EXPLAIN ANALYZE SELECT * FROM t", R, N, "t", false},
      {"EXPLAIN ANALYZE DELETE FROM t", W, N, "t", false},
      {"EXPLAIN ANALYSE UPDATE t SET a = 1", W, N, "t", false},
      {"EXPLAIN ANALYZE VERBOSE INSERT INTO t VALUES (1)", W, N, "t", false},
      {"EXPLAIN (ANALYZE) DELETE FROM t", W, N, "t", false},
      {"EXPLAIN (ANALYZE true, BUFFERS) UPDATE t SET a = 1", W, N, "t", false},
      {"EXPLAIN (ANALYZE false) DELETE FROM t", R, N, "t", false},
      {"EXPLAIN (ANALYZE off) DELETE FROM t", R, N, "t", false},
      {"EXPLAIN (ANALYZE 0) DELETE FROM t", R, N, "t", false},
      {"EXPLAIN (FORMAT JSON) DELETE FROM t", R, N, "t", false},
      {"EXPLAIN (COSTS off, FORMAT json) SELECT * FROM t", R, N, "t", false},
      {"EXPLAIN ANALYZE SELECT nextval('s')", W, N, "", false},
      {"EXPLAIN SELECT nextval('s')", R, N, "", false},
      {"EXPLAIN ANALYZE WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", W, N, "t", false},
      {"EXPLAIN ANALYZE SELECT * FROM t FOR UPDATE", W, N, "t", false},
      {"EXPLAIN ANALYZE EXECUTE stmt", U, N, "", false},
      {"EXPLAIN SELECT * FROM t ORDER BY a", R, N, "t", true},
  });
}

TEST(SqlClassifier, Ddl) {
  RunCases({
      // SAFE
      {"CREATE TABLE orders (id bigint primary key, name text)", D, SAFE, "orders", false},
      {"CREATE TABLE IF NOT EXISTS public.orders (id int)", D, SAFE, "public.orders", false},
      {"CREATE TEMP TABLE tmp (id int)", D, SAFE, "tmp", false},
      {"CREATE TEMPORARY TABLE tmp (id int)", D, SAFE, "tmp", false},
      {"CREATE UNLOGGED TABLE u (id int)", D, SAFE, "u", false},
      {"CREATE GLOBAL TEMPORARY TABLE g (id int)", D, SAFE, "g", false},
      {"CREATE TABLE items (id int, order_id int REFERENCES orders(id))", D, SAFE, "items,orders", false},
      {"CREATE TABLE copy AS SELECT * FROM orders", D, SAFE, "copy,orders", false},
      {"CREATE TABLE p PARTITION OF parent FOR VALUES IN (1)", D, SAFE, "p", false},
      {"CREATE INDEX idx ON orders (created_at)", D, SAFE, "orders", false},
      {"CREATE INDEX ON orders (created_at)", D, SAFE, "orders", false},
      {"CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx ON public.orders USING btree (email)", D, SAFE,
       "public.orders", false},
      {"CREATE INDEX idx ON ONLY parent (a)", D, SAFE, "parent", false},
      {"CREATE INDEX idx ON t USING gin (doc)", D, SAFE, "t", false},
      {"CREATE VIEW v AS SELECT * FROM orders", D, SAFE, "orders", false},
      {"CREATE MATERIALIZED VIEW mv AS SELECT * FROM orders", D, SAFE, "orders", false},
      {"CREATE SEQUENCE s START 1", D, SAFE, "", false},
      {"CREATE SCHEMA app", D, SAFE, "", false},
      {"CREATE TYPE mood AS ENUM ('sad', 'happy')", D, SAFE, "", false},
      {"CREATE EXTENSION IF NOT EXISTS pgcrypto", D, SAFE, "", false},
      {"CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", D, SAFE, "", false},
      {"CREATE ROLE app LOGIN", D, SAFE, "", false},
      {"CREATE DATABASE shop", D, SAFE, "", false},
      {"COMMENT ON TABLE orders IS 'all orders'", D, SAFE, "orders", false},
      {"COMMENT ON COLUMN orders.id IS 'FROM x'", D, SAFE, "", false},
      {"GRANT SELECT ON orders TO reader", D, SAFE, "orders", false},
      {"GRANT SELECT, UPDATE ON TABLE orders, items TO app", D, SAFE, "items,orders", false},
      {"GRANT ALL ON ALL TABLES IN SCHEMA public TO app", D, SAFE, "", false},
      {"GRANT USAGE ON SCHEMA app TO x", D, SAFE, "", false},
      {"IMPORT FOREIGN SCHEMA remote FROM SERVER s INTO local", D, SAFE, "", false},
      {"ALTER TABLE orders ADD COLUMN note text", D, SAFE, "orders", false},
      {"ALTER TABLE orders ADD note text", D, SAFE, "orders", false},
      {"ALTER TABLE orders ADD COLUMN IF NOT EXISTS note text", D, SAFE, "orders", false},
      {"ALTER TABLE orders ADD COLUMN active boolean DEFAULT true", D, SAFE, "orders", false},
      {"ALTER TABLE orders ADD COLUMN meta jsonb", D, SAFE, "orders", false},
      {"ALTER TABLE IF EXISTS orders ADD COLUMN a int", D, SAFE, "orders", false},
      {"ALTER TABLE ONLY orders ADD COLUMN a int", D, SAFE, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a SET DEFAULT 0", D, SAFE, "orders", false},
      {"ALTER TABLE orders ALTER a DROP DEFAULT", D, SAFE, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a DROP NOT NULL", D, SAFE, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a SET STATISTICS 100", D, SAFE, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a SET STORAGE EXTERNAL", D, SAFE, "orders", false},
      {"ALTER TABLE orders VALIDATE CONSTRAINT fk", D, SAFE, "orders", false},
      {"ALTER TABLE orders OWNER TO app", D, SAFE, "orders", false},
      {"ALTER TABLE orders SET (fillfactor = 70)", D, SAFE, "orders", false},
      {"ALTER TABLE orders RESET (fillfactor)", D, SAFE, "orders", false},
      {"ALTER TABLE orders CLUSTER ON idx", D, SAFE, "orders", false},
      {"ALTER TABLE orders SET WITHOUT CLUSTER", D, SAFE, "orders", false},
      {"ALTER TABLE orders REPLICA IDENTITY FULL", D, SAFE, "orders", false},
      {"ALTER TABLE orders ADD COLUMN a int, ADD COLUMN b text", D, SAFE, "orders", false},
      {"ALTER TYPE mood ADD VALUE 'ok'", D, SAFE, "", false},
      {"ALTER INDEX idx OWNER TO app", D, SAFE, "", false},
      {"ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO reader", D, SAFE, "", false},
      // MEDIUM
      {"ALTER TABLE orders ADD COLUMN active boolean NOT NULL DEFAULT true", D, MED, "orders", false},
      {"ALTER TABLE orders ADD COLUMN prio int DEFAULT 0 NOT NULL", D, MED, "orders", false},
      {"ALTER TABLE orders ADD COLUMN cid int REFERENCES customers(id)", D, MED, "customers,orders", false},
      {"ALTER TABLE orders ADD COLUMN code text UNIQUE", D, MED, "orders", false},
      {"ALTER TABLE orders ADD COLUMN n int CHECK (n > 0)", D, MED, "orders", false},
      {"ALTER TABLE orders ADD COLUMN total numeric GENERATED ALWAYS AS (a * b) STORED", D, MED, "orders",
       false},
      {"ALTER TABLE orders ADD COLUMN id2 int GENERATED ALWAYS AS IDENTITY", D, MED, "orders", false},
      {"ALTER TABLE orders ADD CONSTRAINT fk FOREIGN KEY (cid) REFERENCES customers(id)", D, MED,
       "customers,orders", false},
      {"ALTER TABLE orders ADD CONSTRAINT c CHECK (a > 0) NOT VALID", D, MED, "orders", false},
      {"ALTER TABLE orders ADD PRIMARY KEY (id)", D, MED, "orders", false},
      {"ALTER TABLE orders ADD UNIQUE (email)", D, MED, "orders", false},
      {"ALTER TABLE orders ADD FOREIGN KEY (cid) REFERENCES c (id)", D, MED, "c,orders", false},
      {"ALTER TABLE orders DROP CONSTRAINT fk", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE bigint", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE int8", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE text", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE varchar", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE character varying", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE numeric", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a SET DATA TYPE double precision", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER a TYPE pg_catalog.text", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE text COLLATE \"C\"", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a SET NOT NULL", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a DROP IDENTITY", D, MED, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a ADD GENERATED ALWAYS AS IDENTITY", D, MED, "orders", false},
      {"ALTER TABLE orders SET TABLESPACE fast", D, MED, "orders", false},
      {"ALTER TABLE orders SET LOGGED", D, MED, "orders", false},
      {"ALTER TABLE orders SET UNLOGGED", D, MED, "orders", false},
      {"ALTER TABLE orders ENABLE ROW LEVEL SECURITY", D, MED, "orders", false},
      {"ALTER TABLE orders DISABLE TRIGGER ALL", D, MED, "orders", false},
      {"ALTER TABLE orders INHERIT parent", D, MED, "orders", false},
      {"ALTER TABLE orders NO INHERIT parent", D, MED, "orders", false},
      {"ALTER TABLE parent ATTACH PARTITION p FOR VALUES IN (1)", D, MED, "parent", false},
      {"ALTER TABLE orders ADD COLUMN a int, ADD CONSTRAINT u UNIQUE (a)", D, MED, "orders", false},
      {"ALTER SEQUENCE s RESTART WITH 100", D, MED, "", false},
      {"ALTER INDEX idx SET TABLESPACE fast", D, MED, "", false},
      {"ALTER ROLE app SET search_path = app", D, MED, "", false},
      {"CREATE OR REPLACE VIEW v AS SELECT * FROM orders", D, MED, "orders", false},
      {"CREATE OR REPLACE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql", D, MED, "", false},
      {"CREATE TRIGGER trg BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION f()", D, MED,
       "orders", false},
      {"CREATE RULE r AS ON INSERT TO orders DO INSTEAD NOTHING", D, MED, "orders", false},
      {"CREATE POLICY p ON orders FOR SELECT USING (owner = current_user)", D, MED, "orders", false},
      {"DROP INDEX idx", D, MED, "", false},
      {"DROP INDEX CONCURRENTLY IF EXISTS idx", D, MED, "", false},
      {"DROP TRIGGER trg ON orders", D, MED, "", false},
      {"DROP POLICY p ON orders", D, MED, "", false},
      {"REVOKE SELECT ON orders FROM reader", D, MED, "orders", false},
      // HIGH
      {"DROP TABLE orders", D, HIGH, "orders", false},
      {"DROP TABLE IF EXISTS orders, items CASCADE", D, HIGH, "items,orders", false},
      {"drop table public.orders", D, HIGH, "public.orders", false},
      {"DROP VIEW v", D, HIGH, "v", false},
      {"DROP MATERIALIZED VIEW IF EXISTS mv", D, HIGH, "mv", false},
      {"DROP SCHEMA app CASCADE", D, HIGH, "", false},
      {"DROP SEQUENCE s", D, HIGH, "", false},
      {"DROP TYPE mood", D, HIGH, "", false},
      {"DROP FUNCTION f()", D, HIGH, "", false},
      {"DROP DATABASE shop", D, HIGH, "", false},
      {"DROP OWNED BY app", D, HIGH, "", false},
      {"DROP INDEX idx CASCADE", D, HIGH, "", false},
      {"TRUNCATE orders", D, HIGH, "orders", false},
      {"TRUNCATE TABLE orders, items RESTART IDENTITY", D, HIGH, "items,orders", false},
      {"TRUNCATE ONLY orders", D, HIGH, "orders", false},
      {"ALTER TABLE orders DROP COLUMN note", D, HIGH, "orders", false},
      {"ALTER TABLE orders DROP note", D, HIGH, "orders", false},
      {"ALTER TABLE orders DROP COLUMN IF EXISTS note CASCADE", D, HIGH, "orders", false},
      {"ALTER TABLE orders DROP CONSTRAINT fk CASCADE", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE int", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE integer", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE varchar(50)", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE numeric(10,2)", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE jsonb USING a::jsonb", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE bigint USING a::bigint", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE text[]", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a SET DATA TYPE smallint", D, HIGH, "orders", false},
      {"ALTER TABLE orders ALTER COLUMN a TYPE mood", D, HIGH, "orders", false},
      {"ALTER TABLE orders ADD COLUMN must int NOT NULL", D, HIGH, "orders", false},
      {"ALTER TABLE orders RENAME TO purchases", D, HIGH, "orders", false},
      {"ALTER TABLE orders RENAME COLUMN a TO b", D, HIGH, "orders", false},
      {"ALTER TABLE orders RENAME a TO b", D, HIGH, "orders", false},
      {"ALTER TABLE orders RENAME CONSTRAINT a TO b", D, HIGH, "orders", false},
      {"ALTER TABLE orders SET SCHEMA archive", D, HIGH, "orders", false},
      {"ALTER TABLE parent DETACH PARTITION p", D, HIGH, "parent", false},
      {"ALTER TABLE orders ADD COLUMN a int, DROP COLUMN b", D, HIGH, "orders", false},
      {"ALTER TABLE orders FROBNICATE", D, HIGH, "orders", false},
      {"ALTER TABLE orders", D, HIGH, "orders", false},
      {"ALTER INDEX idx RENAME TO idx2", D, HIGH, "", false},
      {"ALTER VIEW v RENAME TO w", D, HIGH, "v", false},
      {"ALTER SEQUENCE s RENAME TO t", D, HIGH, "", false},
      {"ALTER TYPE mood RENAME VALUE 'sad' TO 'blue'", D, HIGH, "", false},
      {"ALTER TYPE addr DROP ATTRIBUTE zip", D, HIGH, "", false},
      {"ALTER SCHEMA app RENAME TO app2", D, HIGH, "", false},
      {"ALTER FUNCTION f() SET SCHEMA other", D, HIGH, "", false},
      {"ALTER FOREIGN TABLE ft DROP COLUMN c", D, HIGH, "ft", false},
  });
}

TEST(SqlClassifier, TxnSessionAdmin) {
  RunCases({
      {"BEGIN", T, N, "", false},
      {"begin transaction", T, N, "", false},
      {"BEGIN WORK", T, N, "", false},
      {"BEGIN ISOLATION LEVEL SERIALIZABLE", T, N, "", false},
      {"BEGIN READ ONLY", T, N, "", false},
      {"START TRANSACTION", T, N, "", false},
      {"START TRANSACTION READ WRITE", T, N, "", false},
      {"COMMIT", T, N, "", false},
      {"COMMIT WORK", T, N, "", false},
      {"COMMIT AND CHAIN", T, N, "", false},
      {"END", T, N, "", false},
      {"END TRANSACTION", T, N, "", false},
      {"ROLLBACK", T, N, "", false},
      {"ABORT", T, N, "", false},
      {"ROLLBACK TO SAVEPOINT sp1", T, N, "", false},
      {"ROLLBACK TO sp1", T, N, "", false},
      {"ROLLBACK WORK TO SAVEPOINT sp1", T, N, "", false},
      {"SAVEPOINT sp1", T, N, "", false},
      {"RELEASE SAVEPOINT sp1", T, N, "", false},
      {"RELEASE sp1", T, N, "", false},
      {"PREPARE TRANSACTION 'tx1'", T, N, "", false},
      {"COMMIT PREPARED 'tx1'", T, N, "", false},
      {"ROLLBACK PREPARED 'tx1'", T, N, "", false},
      {"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", T, N, "", false},
      {"SET TRANSACTION READ ONLY", T, N, "", false},
      {"SET search_path TO app, public", S, N, "", false},
      {"SET search_path = app", S, N, "", false},
      {"set statement_timeout = '5s'", S, N, "", false},
      {"SET SESSION statement_timeout TO 1000", S, N, "", false},
      {"SET LOCAL lock_timeout = '1s'", S, N, "", false},
      {"SET TIME ZONE 'UTC'", S, N, "", false},
      {"SET ROLE admin", S, N, "", false},
      {"SET SESSION AUTHORIZATION bob", S, N, "", false},
      {"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", S, N, "", false},
      {"SET app.tenant = '42'", S, N, "", false},
      {"RESET search_path", S, N, "", false},
      {"RESET ALL", S, N, "", false},
      {"DISCARD ALL", S, N, "", false},
      {"DISCARD PLANS", S, N, "", false},
      {"LISTEN orders", S, N, "", false},
      {"UNLISTEN *", S, N, "", false},
      {"UNLISTEN orders", S, N, "", false},
      {"PREPARE q AS SELECT * FROM orders WHERE id = $1", S, N, "orders", false},
      {"PREPARE q (int) AS UPDATE orders SET a = $1", S, N, "orders", false},
      {"DEALLOCATE q", S, N, "", false},
      {"DEALLOCATE PREPARE q", S, N, "", false},
      {"DEALLOCATE ALL", S, N, "", false},
      {"EXECUTE q (1)", U, N, "", false},
      {"DECLARE c CURSOR FOR SELECT * FROM orders", R, N, "orders", false},
      {"DECLARE c NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM orders FOR UPDATE", W, N, "orders", false},
      {"FETCH 10 FROM c", R, N, "", false},
      {"FETCH NEXT IN c", R, N, "", false},
      {"MOVE FORWARD 5 IN c", R, N, "", false},
      {"CLOSE c", S, N, "", false},
      {"CLOSE ALL", S, N, "", false},
      {"LOAD 'auto_explain'", S, N, "", false},
      {"VACUUM", A, N, "", false},
      {"VACUUM orders", A, N, "orders", false},
      {"VACUUM (VERBOSE, ANALYZE) orders", A, N, "orders", false},
      {"VACUUM FULL VERBOSE orders, items", A, N, "items,orders", false},
      {"ANALYZE orders", A, N, "orders", false},
      {"ANALYZE orders (a, b), items", A, N, "items,orders", false},
      {"ANALYSE", A, N, "", false},
      {"CLUSTER orders USING idx", A, N, "orders", false},
      {"REINDEX TABLE orders", A, N, "orders", false},
      {"REINDEX TABLE CONCURRENTLY orders", A, N, "orders", false},
      {"REINDEX INDEX idx", A, N, "", false},
      {"CHECKPOINT", A, N, "", false},
      {"REFRESH MATERIALIZED VIEW CONCURRENTLY mv", A, N, "mv", false},
      {"ALTER SYSTEM SET work_mem = '64MB'", A, N, "", false},
  });
}

TEST(SqlClassifier, UnknownAndEdge) {
  RunCases({
      {"FROBNICATE everything", U, N, "", false},
      {"SELECT 'unterminated", U, N, "", false},
      {"SELECT \"unterminated", U, N, "", false},
      {"SELECT 1 /* unterminated", U, N, "", false},
      {"SELECT $$ unterminated", U, N, "", false},
      {"SELECT $a$ x $b$", U, N, "", false},
      {"(((", U, N, "", false},
      {"()", U, N, "", false},
      {"REASSIGN OWNED BY a TO b", U, N, "", false},
      {"SELECT * FROM", R, N, "", false},
      {"SELECT * FROM WHERE", R, N, "", false},
      {"UPDATE", W, N, "", false},
      {"SELECT 1 FROM t WHERE a = $1 AND b = $2", R, N, "t", false},
  });
}

TEST(SqlClassifier, StandardConformingStringsOff) {
  // With standard_conforming_strings off, 'a\' ; DELETE' is one string.
  ClassifierOptions opts;
  opts.standard_conforming_strings = false;
  Classification c = ClassifySql("SELECT 'a\\'; DELETE FROM t; '", opts);
  ASSERT_EQ(c.statements.size(), 1u);
  EXPECT_EQ(c.statement_class, R);
  c = ClassifySql("SELECT 'a\\'; DELETE FROM t; '");
  ASSERT_EQ(c.statements.size(), 3u);  // "SELECT 'a\\'", "DELETE FROM t", "'"
  EXPECT_EQ(c.statements[1].statement_class, W);
  EXPECT_EQ(c.statements[2].statement_class, U);  // unterminated quote
  EXPECT_TRUE(c.lex_error);
  // E'' strings always take backslash escapes.
  c = ClassifySql("SELECT E'a\\'; DELETE FROM t; '");
  ASSERT_EQ(c.statements.size(), 1u);
  EXPECT_EQ(c.statement_class, R);
}

TEST(SqlClassifier, ExtraMutatingFunctions) {
  const std::string_view extra[] = {"my_audit_insert"};
  ClassifierOptions opts;
  opts.extra_mutating_functions = extra;
  EXPECT_EQ(ClassifySql("SELECT my_audit_insert(1)", opts).statement_class, W);
  EXPECT_EQ(ClassifySql("SELECT MY_AUDIT_INSERT(1)", opts).statement_class, W);
  EXPECT_EQ(ClassifySql("SELECT my_audit_insert(1)").statement_class, R);
}

TEST(SqlClassifier, MultiStatement) {
  Classification c = ClassifySql("BEGIN; UPDATE t SET a = 1; SELECT * FROM t ORDER BY a; COMMIT;");
  ASSERT_EQ(c.statements.size(), 4u);
  EXPECT_EQ(c.statements[0].txn, TxnControl::kBegin);
  EXPECT_EQ(c.statements[1].statement_class, W);
  EXPECT_EQ(c.statements[1].text, "UPDATE t SET a = 1");
  EXPECT_EQ(c.statements[2].statement_class, R);
  EXPECT_TRUE(c.statements[2].has_order_by);
  EXPECT_EQ(c.statements[3].txn, TxnControl::kCommit);
  EXPECT_EQ(c.statement_class, W);
  EXPECT_TRUE(c.IsWriteLike());

  c = ClassifySql("SELECT 1; SELECT 2");
  EXPECT_EQ(c.statements.size(), 2u);
  EXPECT_EQ(c.statement_class, R);
  EXPECT_FALSE(c.IsWriteLike());

  c = ClassifySql("SELECT 1; DROP TABLE x; DELETE FROM y");
  EXPECT_EQ(c.statement_class, D);
  EXPECT_EQ(c.ddl_risk, HIGH);

  c = ClassifySql("SET a = 1; SELECT 1");
  EXPECT_EQ(c.statement_class, S);

  c = ClassifySql("SELECT 1; FROBNICATE; UPDATE t SET a = 1");
  EXPECT_EQ(c.statement_class, U);

  c = ClassifySql(";;  ; -- nothing\n ; /* */");
  EXPECT_TRUE(c.empty());
  EXPECT_EQ(c.statement_class, R);

  c = ClassifySql("");
  EXPECT_TRUE(c.empty());

  c = ClassifySql("SELECT ';' FROM t; SELECT $$;$$");
  EXPECT_EQ(c.statements.size(), 2u);

  // A SQL-standard function body keeps its semicolons (sql-createfunction).
  c = ClassifySql(
      "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 1 END; "
      "END; SELECT 2");
  ASSERT_EQ(c.statements.size(), 2u);
  EXPECT_EQ(c.statements[0].statement_class, D);
  EXPECT_EQ(c.statements[1].statement_class, R);

  // Parenthesised semicolons are not separators (CREATE RULE ... DO (a; b)).
  c = ClassifySql("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2))");
  EXPECT_EQ(c.statements.size(), 1u);

  // Reuse of a Classification object.
  SqlClassifier classifier;
  classifier.Classify("SELECT 1; SELECT 2; SELECT 3", &c);
  EXPECT_EQ(c.statements.size(), 3u);
  classifier.Classify("DELETE FROM t", &c);
  ASSERT_EQ(c.statements.size(), 1u);
  EXPECT_EQ(c.statement_class, W);
}

TEST(SqlClassifier, Details) {
  struct Detail {
    const char* sql;
    TxnControl txn;
    SessionCommand session;
    const char* object;
    bool read_only;
  } cases[] = {
      {"BEGIN", TxnControl::kBegin, SessionCommand::kNone, "", false},
      {"BEGIN READ ONLY", TxnControl::kBegin, SessionCommand::kNone, "", true},
      {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY", TxnControl::kBegin, SessionCommand::kNone, "",
       true},
      {"START TRANSACTION READ WRITE", TxnControl::kBegin, SessionCommand::kNone, "", false},
      {"COMMIT", TxnControl::kCommit, SessionCommand::kNone, "", false},
      {"END", TxnControl::kCommit, SessionCommand::kNone, "", false},
      {"ROLLBACK", TxnControl::kRollback, SessionCommand::kNone, "", false},
      {"ABORT", TxnControl::kRollback, SessionCommand::kNone, "", false},
      {"SAVEPOINT sp1", TxnControl::kSavepoint, SessionCommand::kNone, "sp1", false},
      {"RELEASE SAVEPOINT sp1", TxnControl::kRelease, SessionCommand::kNone, "sp1", false},
      {"RELEASE sp2", TxnControl::kRelease, SessionCommand::kNone, "sp2", false},
      {"ROLLBACK TO SAVEPOINT sp1", TxnControl::kRollbackToSavepoint, SessionCommand::kNone, "sp1", false},
      {"ROLLBACK TO sp3", TxnControl::kRollbackToSavepoint, SessionCommand::kNone, "sp3", false},
      {"PREPARE TRANSACTION 'gid-1'", TxnControl::kPrepareTransaction, SessionCommand::kNone, "'gid-1'", false},
      {"COMMIT PREPARED 'gid-1'", TxnControl::kCommitPrepared, SessionCommand::kNone, "'gid-1'", false},
      {"ROLLBACK PREPARED 'gid-1'", TxnControl::kRollbackPrepared, SessionCommand::kNone, "'gid-1'", false},
      {"SET TRANSACTION READ ONLY", TxnControl::kSetTransaction, SessionCommand::kNone, "", true},
      {"SET search_path TO a", TxnControl::kNone, SessionCommand::kSet, "search_path", false},
      {"SET LOCAL statement_timeout = 5", TxnControl::kNone, SessionCommand::kSetLocal, "statement_timeout",
       false},
      {"SET SESSION work_mem = '1MB'", TxnControl::kNone, SessionCommand::kSet, "work_mem", false},
      {"SET TIME ZONE 'UTC'", TxnControl::kNone, SessionCommand::kSet, "TIME ZONE", false},
      {"SET app.tenant = 'x'", TxnControl::kNone, SessionCommand::kSet, "app.tenant", false},
      {"SET ROLE admin", TxnControl::kNone, SessionCommand::kSet, "ROLE", false},
      {"RESET search_path", TxnControl::kNone, SessionCommand::kReset, "search_path", false},
      {"RESET ALL", TxnControl::kNone, SessionCommand::kReset, "ALL", false},
      {"DISCARD ALL", TxnControl::kNone, SessionCommand::kDiscard, "ALL", false},
      {"LISTEN chan", TxnControl::kNone, SessionCommand::kListen, "chan", false},
      {"UNLISTEN *", TxnControl::kNone, SessionCommand::kUnlisten, "*", false},
      {"PREPARE q1 AS SELECT 1", TxnControl::kNone, SessionCommand::kPrepare, "q1", false},
      {"EXECUTE q1", TxnControl::kNone, SessionCommand::kExecute, "q1", false},
      {"DEALLOCATE q1", TxnControl::kNone, SessionCommand::kDeallocate, "q1", false},
      {"DEALLOCATE PREPARE q1", TxnControl::kNone, SessionCommand::kDeallocate, "q1", false},
      {"DECLARE cur CURSOR FOR SELECT 1", TxnControl::kNone, SessionCommand::kDeclareCursor, "cur", false},
      {"FETCH 5 FROM cur", TxnControl::kNone, SessionCommand::kFetch, "cur", false},
      {"CLOSE cur", TxnControl::kNone, SessionCommand::kCloseCursor, "cur", false},
      {"SHOW search_path", TxnControl::kNone, SessionCommand::kShow, "search_path", false},
      {"SHOW TIME ZONE", TxnControl::kNone, SessionCommand::kShow, "TIME ZONE", false},
      {"LOAD 'x'", TxnControl::kNone, SessionCommand::kLoad, "'x'", false},
  };
  for (const auto& d : cases) {
    Classification c = ClassifySql(d.sql);
    ASSERT_EQ(c.statements.size(), 1u) << d.sql;
    const StatementInfo& s = c.statements[0];
    EXPECT_EQ(ToString(s.txn), ToString(d.txn)) << d.sql;
    EXPECT_EQ(ToString(s.session), ToString(d.session)) << d.sql;
    EXPECT_EQ(s.object_name, d.object) << d.sql;
    EXPECT_EQ(s.read_only_transaction, d.read_only) << d.sql;
  }
  Classification c = ClassifySql("PREPARE q AS DELETE FROM t");
  EXPECT_EQ(c.statements[0].prepared_class, W);
  c = ClassifySql("PREPARE q (int, text) AS SELECT * FROM t WHERE a = $1");
  EXPECT_EQ(c.statements[0].prepared_class, R);
  c = ClassifySql("  select 1  ;  ");
  EXPECT_EQ(c.statements[0].text, "select 1");
  EXPECT_EQ(c.statements[0].command, "select");
  c = ClassifySql("SELECT * FROM t FOR UPDATE");
  EXPECT_TRUE(c.statements[0].locks_rows);
  c = ClassifySql("SELECT nextval('s')");
  EXPECT_TRUE(c.statements[0].calls_mutating_function);
  c = ClassifySql("SELECT * INTO x FROM t");
  EXPECT_TRUE(c.statements[0].select_into);
}

TEST(TableRef, MatchingAndNormalizing) {
  Classification c = ClassifySql("SELECT * FROM Public.Orders, \"Mixed\".\"CaSe\", \"a\"\"b\"");
  ASSERT_EQ(c.statements[0].tables.size(), 3u);
  const TableRef& a = c.statements[0].tables[0];
  EXPECT_TRUE(a.NameEquals("orders"));
  EXPECT_TRUE(a.SchemaEquals("public"));
  EXPECT_TRUE(a.Matches("orders"));
  EXPECT_TRUE(a.Matches("public.orders"));
  EXPECT_FALSE(a.Matches("app.orders"));
  EXPECT_FALSE(a.NameEquals("Orders"));
  EXPECT_EQ(a.Normalized(), "public.orders");
  const TableRef& b = c.statements[0].tables[1];
  EXPECT_TRUE(b.NameEquals("CaSe"));
  EXPECT_FALSE(b.NameEquals("case"));
  EXPECT_EQ(b.Normalized(), "Mixed.CaSe");
  const TableRef& q = c.statements[0].tables[2];
  EXPECT_TRUE(q.NameEquals("a\"b"));
  EXPECT_EQ(q.Normalized(), "a\"b");
  // Duplicates (in any spelling of the same identifier) are listed once.
  c = ClassifySql("SELECT * FROM orders JOIN ORDERS o2 ON true JOIN \"orders\" o3 ON true");
  EXPECT_EQ(c.statements[0].tables.size(), 1u);
}

// ------------------------------------------------------------------ lexer

struct LexCase {
  const char* sql;
  std::vector<std::pair<TokenKind, std::string>> tokens;
};

TEST(SqlLexer, Tokens) {
  using TK = TokenKind;
  const LexCase cases[] = {
      {"SELECT a, b FROM t;",
       {{TK::kWord, "SELECT"}, {TK::kWord, "a"}, {TK::kComma, ","}, {TK::kWord, "b"}, {TK::kWord, "FROM"},
        {TK::kWord, "t"}, {TK::kSemicolon, ";"}}},
      {"'it''s' E'a\\'b' $$x$$ $q$ $$ $q$",
       {{TK::kString, "'it''s'"}, {TK::kString, "E'a\\'b'"}, {TK::kString, "$$x$$"},
        {TK::kString, "$q$ $$ $q$"}}},
      {"\"a\"\"b\" U&\"x\" U&'y' B'01' X'af' N'n'",
       {{TK::kQuotedIdentifier, "\"a\"\"b\""}, {TK::kQuotedIdentifier, "U&\"x\""}, {TK::kString, "U&'y'"},
        {TK::kString, "B'01'"}, {TK::kString, "X'af'"}, {TK::kString, "N'n'"}}},
      {"$1 $23 a$b 1.5e-3 .5 42",
       {{TK::kParam, "$1"}, {TK::kParam, "$23"}, {TK::kWord, "a$b"}, {TK::kNumber, "1.5e-3"},
        {TK::kNumber, ".5"}, {TK::kNumber, "42"}}},
      {"a::int[] <> b", {{TK::kWord, "a"}, {TK::kDoubleColon, "::"}, {TK::kWord, "int"}, {TK::kLBracket, "["},
                         {TK::kRBracket, "]"}, {TK::kOperator, "<>"}, {TK::kWord, "b"}}},
      {"a--c\n+/* x /* y */ z */b", {{TK::kWord, "a"}, {TK::kOperator, "+"}, {TK::kWord, "b"}}},
      {"x*/*c*/y", {{TK::kWord, "x"}, {TK::kOperator, "*"}, {TK::kWord, "y"}}},
      {"s.t", {{TK::kWord, "s"}, {TK::kDot, "."}, {TK::kWord, "t"}}},
      {"'open", {{TK::kError, "'open"}}},
      {"/* open", {{TK::kError, "/* open"}}},
      {"a $tag$ open", {{TK::kWord, "a"}, {TK::kError, "$tag$ open"}}},
      {"caf\xc3\xa9 x", {{TK::kWord, "caf\xc3\xa9"}, {TK::kWord, "x"}}},
  };
  for (const auto& c : cases) {
    SqlLexer lexer(c.sql);
    std::vector<std::pair<TokenKind, std::string>> got;
    for (Token t = lexer.Next(); t.kind != TK::kEnd; t = lexer.Next()) {
      got.emplace_back(t.kind, std::string(t.text));
    }
    EXPECT_EQ(got, c.tokens) << c.sql;
  }
}

TEST(SqlLexer, Keywords) {
  EXPECT_EQ(LookupKeyword("select"), Keyword::kSelect);
  EXPECT_EQ(LookupKeyword("SeLeCt"), Keyword::kSelect);
  EXPECT_EQ(LookupKeyword("selects"), Keyword::kNone);
  EXPECT_EQ(LookupKeyword("zone"), Keyword::kZone);
  EXPECT_EQ(LookupKeyword("abort"), Keyword::kAbort);
  EXPECT_EQ(LookupKeyword(""), Keyword::kNone);
  EXPECT_EQ(LookupKeyword("averyveryverylongidentifier"), Keyword::kNone);
  EXPECT_EQ(KeywordText(Keyword::kMaterialized), "materialized");
  for (int k = 1; k <= static_cast<int>(Keyword::kZone); ++k) {
    EXPECT_EQ(LookupKeyword(KeywordText(static_cast<Keyword>(k))), static_cast<Keyword>(k));
  }
}

TEST(SqlClassifier, IsWriteLike) {
  EXPECT_FALSE(IsWriteLike(R));
  EXPECT_TRUE(IsWriteLike(W));
  EXPECT_TRUE(IsWriteLike(D));
  EXPECT_TRUE(IsWriteLike(A));
  EXPECT_TRUE(IsWriteLike(U));
  EXPECT_FALSE(IsWriteLike(T));
  EXPECT_FALSE(IsWriteLike(S));
  EXPECT_GT(Strength(D), Strength(U));
  EXPECT_GT(Strength(U), Strength(W));
  EXPECT_GT(Strength(W), Strength(T));
  EXPECT_GT(Strength(T), Strength(S));
  EXPECT_GT(Strength(S), Strength(R));
}

}  // namespace
}  // namespace turnout::protocol::pg
