// pgjdbc (Debian's libpostgresql-jdbc-java) through turnout, as a Java
// application uses it: plain statements, prepared statements past the
// driver's prepareThreshold (server-side named statements), batches,
// generated keys, transactions, errors the session survives, the
// drop-and-create batch that once wedged a session (issue 13 item 2), and
// with the argument "copy" the CopyManager both ways. Prints OK or throws.
//
//   java -cp /usr/share/java/postgresql.jar:DIR PgjdbcSuite JDBC_URL all|copy
import java.io.ByteArrayOutputStream;
import java.io.StringReader;
import java.math.BigDecimal;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class PgjdbcSuite {
  static void check(boolean ok, String what) {
    if (!ok) throw new AssertionError(what);
  }

  public static void main(String[] args) throws Exception {
    String url = args[0];
    boolean copy = args.length > 1 && args[1].equals("copy");
    try (Connection c = DriverManager.getConnection(url, System.getenv("PGUSER"), System.getenv("PGPASSWORD"))) {
      if (copy) {
        copy(c);
      } else {
        statements(c);
      }
    }
    System.out.println("OK");
  }

  static void statements(Connection c) throws SQLException {
    try (Statement s = c.createStatement()) {
      s.execute("SET application_name = 'pgjdbc-suite'");
      s.execute("DROP TABLE IF EXISTS jdbc_t");
      // No volatile default: under statement dual-write both sides must
      // compute the same rows.
      s.execute("CREATE TABLE jdbc_t (id serial PRIMARY KEY, name text NOT NULL, amount numeric(10,2))");
    }
    // Past prepareThreshold (5 by default) pgjdbc switches to a named
    // server-side statement.
    try (PreparedStatement p = c.prepareStatement("INSERT INTO jdbc_t (name, amount) VALUES (?, ?)")) {
      for (int i = 0; i < 20; i++) {
        p.setString(1, "n" + i);
        p.setBigDecimal(2, new BigDecimal(i + ".50"));
        check(p.executeUpdate() == 1, "insert " + i);
      }
    }
    try (PreparedStatement p = c.prepareStatement("INSERT INTO jdbc_t (name, amount) VALUES (?, ?)")) {
      for (int i = 0; i < 100; i++) {
        p.setString(1, "b" + i);
        p.setBigDecimal(2, BigDecimal.ONE);
        p.addBatch();
      }
      check(p.executeBatch().length == 100, "batch of 100");
    }
    try (PreparedStatement p =
             c.prepareStatement("INSERT INTO jdbc_t (name) VALUES (?)", Statement.RETURN_GENERATED_KEYS)) {
      p.setString(1, "keyed");
      check(p.executeUpdate() == 1, "insert returning a key");
      try (ResultSet k = p.getGeneratedKeys()) {
        check(k.next() && k.getInt(1) == 121, "generated key");
      }
    }
    c.setAutoCommit(false);
    try (Statement s = c.createStatement()) {
      check(s.executeUpdate("UPDATE jdbc_t SET amount = amount + 1 WHERE name LIKE 'b%'") == 100, "update");
      c.commit();
      check(s.executeUpdate("DELETE FROM jdbc_t") == 121, "delete in a transaction");
      c.rollback();
    }
    c.setAutoCommit(true);
    try (Statement s = c.createStatement()) {
      try {
        s.executeQuery("SELECT 1/0");
        check(false, "division by zero was not an error");
      } catch (SQLException e) {
        check("22012".equals(e.getSQLState()), "sqlstate " + e.getSQLState());
      }
      try (ResultSet r = s.executeQuery("SELECT count(*), sum(amount) FROM jdbc_t")) {
        check(r.next(), "a row");
        check(r.getLong(1) == 121, "count " + r.getLong(1));
        check(r.getBigDecimal(2).compareTo(new BigDecimal("400.00")) == 0, "sum " + r.getBigDecimal(2));
      }
      // The batch that once wedged a session: DROP ... IF EXISTS, CREATE,
      // INSERT in one extended-protocol batch.
      s.addBatch("DROP TABLE IF EXISTS jdbc_batch");
      s.addBatch("CREATE TABLE jdbc_batch (id int PRIMARY KEY)");
      s.addBatch("INSERT INTO jdbc_batch VALUES (1), (2)");
      s.executeBatch();
      try (ResultSet r = s.executeQuery("SELECT count(*) FROM jdbc_batch")) {
        check(r.next() && r.getLong(1) == 2, "batch table rows");
      }
    }
  }

  static void copy(Connection c) throws Exception {
    try (Statement s = c.createStatement()) {
      s.execute("DROP TABLE IF EXISTS jdbc_copy");
      s.execute("CREATE TABLE jdbc_copy (id int PRIMARY KEY, v text)");
    }
    StringBuilder rows = new StringBuilder();
    for (int i = 1; i <= 5000; i++) rows.append(i).append('\t').append("row-").append(i).append('\n');
    CopyManager copy = c.unwrap(PGConnection.class).getCopyAPI();
    check(copy.copyIn("COPY jdbc_copy FROM STDIN", new StringReader(rows.toString())) == 5000, "copy in");
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    check(copy.copyOut("COPY (SELECT * FROM jdbc_copy ORDER BY id) TO STDOUT", out) == 5000, "copy out");
    check(out.toString("UTF-8").equals(rows.toString()), "copied rows come back as they went in");
    // A bad row: the error, then the connection goes on.
    try {
      copy.copyIn("COPY jdbc_copy FROM STDIN", new StringReader("not-a-number\tx\n"));
      check(false, "a bad row was accepted");
    } catch (SQLException e) {
      check("22P02".equals(e.getSQLState()), "sqlstate " + e.getSQLState());
    }
    try (Statement s = c.createStatement(); ResultSet r = s.executeQuery("SELECT count(*) FROM jdbc_copy")) {
      check(r.next() && r.getLong(1) == 5000, "rows after the bad copy");
    }
  }
}
