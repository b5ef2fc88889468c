// proxy/credential_check: each secret form checked the same for both
// protocols, with and without the cache; the cache's hits and misses, a
// changed secret never served from it, and its bound.
#include "proxy/credential_check.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace turnout::proxy {
namespace {

// A PostgreSQL 15 secret for the password "turnout-secret" (4096 iterations).
constexpr char kPgScram[] =
    "SCRAM-SHA-256$4096:eojt0NpYP49u+VudKn9r9A==$GPwc1sK/M24gcbeECsWnKXj+I5ssOyqIC7je5EY0MNg=:"
    "zgizns9yW1eNGriwdpQnhqobEbtENq9BlkG7GGz3JYg=";

TEST(CredentialCheck, SecretKindsFollowPostgres) {
  struct Case {
    std::string secret;
    StoredSecret::Kind kind;
  };
  const std::vector<Case> cases = {
      {"wonderland", StoredSecret::Kind::kPlain},
      {"md56dfaaf564b9b1315b593654dcad069b4", StoredSecret::Kind::kMd5},
      {"md56DFAAF564B9B1315B593654DCAD069B4", StoredSecret::Kind::kPlain},  // md5 hex is lowercase
      {"md56dfaaf564b9b1315b593654dcad069b", StoredSecret::Kind::kPlain},   // 31 digits
      {kPgScram, StoredSecret::Kind::kScram},
      {"SCRAM-SHA-256$garbage", StoredSecret::Kind::kPlain},  // get_password_type: not a parsable secret
      {"", StoredSecret::Kind::kPlain},
  };
  for (const auto& c : cases) EXPECT_EQ(StoredSecret::From(c.secret).kind, c.kind) << c.secret;
}

TEST(CredentialCheck, CleartextAgainstEachSecretForm) {
  struct Case {
    std::string secret, user, password;
    bool ok;
  };
  const std::string scram16 = ScramSecret::FromPassword("pw", "salty", 16).ToString();
  const std::vector<Case> cases = {
      {"wonderland", "alice", "wonderland", true},
      {"wonderland", "alice", "wonderlanD", false},
      {"wonderland", "alice", "", false},
      {"wonderland", "alice", "wonderland2", false},
      {"", "alice", "", true},  // an empty plain secret is a password like any other
      // md5("hatter" + "madhatter")
      {"md56dfaaf564b9b1315b593654dcad069b4", "madhatter", "hatter", true},
      {"md56dfaaf564b9b1315b593654dcad069b4", "madhatter", "hatteR", false},
      {"md56dfaaf564b9b1315b593654dcad069b4", "otheruser", "hatter", false},
      {"md56dfaaf564b9b1315b593654dcad069b4", "madhatter", "md56dfaaf564b9b1315b593654dcad069b4", false},
      {kPgScram, "turnout", "turnout-secret", true},
      {kPgScram, "anyone", "turnout-secret", true},  // SCRAM does not salt with the user name
      {kPgScram, "turnout", "turnout-secreT", false},
      {kPgScram, "turnout", kPgScram, false},
      {scram16, "u", "pw", true},
      {scram16, "u", "px", false},
      {"SCRAM-SHA-256$garbage", "turnout", "x", false},
      {"SCRAM-SHA-256$garbage", "turnout", "SCRAM-SHA-256$garbage", true},  // a plain password after all
  };
  ScramKeyCache keys;
  for (int round = 0; round < 2; ++round) {  // the second round hits what the first kept
    for (const auto& c : cases) {
      const StoredSecret s = StoredSecret::From(c.secret);
      EXPECT_EQ(s.CheckCleartext(c.password, c.user), c.ok) << c.secret << " / " << c.password;
      EXPECT_EQ(s.CheckCleartext(c.password, c.user, &keys), c.ok) << c.secret << " / " << c.password;
    }
  }
  // One entry per right (password, salt, iterations), whoever the user;
  // nothing for the wrong ones.
  EXPECT_EQ(keys.stats().size, 2u);
}

TEST(CredentialCheck, Md5ResponseAgainstEachSecretForm) {
  const std::uint8_t salt_bytes[4] = {1, 2, 3, 4};
  const std::span<const std::uint8_t, 4> salt(salt_bytes, 4);
  // libpq's answer for user alice, password secret, salt 01020304.
  const std::string right = "md598a0412b9c31436fc53776e863350083";
  struct Case {
    std::string secret, user, response;
    bool ok;
  };
  const std::vector<Case> cases = {
      {"secret", "alice", right, true},
      {Md5Secret("secret", "alice"), "alice", right, true},
      {"secret", "bob", right, false},
      {"secret2", "alice", right, false},
      {"secret", "alice", "md598a0412b9c31436fc53776e863350084", false},
      {"secret", "alice", "", false},
      {ScramSecret::FromPassword("secret", "salty", 16).ToString(), "alice", right, false},
  };
  for (const auto& c : cases)
    EXPECT_EQ(StoredSecret::From(c.secret).CheckMd5Response(c.response, c.user, salt), c.ok)
        << c.secret << " / " << c.response;
}

TEST(CredentialCheck, ScramVerifierForEachSecretForm) {
  ScramKeyCache keys;
  const ScramSecret stored = ScramSecret::FromPassword("pw", "salty", 16);
  const auto from_scram = StoredSecret::From(stored.ToString()).ScramVerifier(keys);
  ASSERT_TRUE(from_scram);
  EXPECT_EQ(from_scram->ToString(), stored.ToString());
  EXPECT_FALSE(StoredSecret::From(Md5Secret("pw", "u")).ScramVerifier(keys));

  const auto plain = StoredSecret::From("plain-pw").ScramVerifier(keys);
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->iterations, kScramDefaultIterations);
  EXPECT_TRUE(plain->Matches("plain-pw"));
  EXPECT_FALSE(plain->Matches("plain-pW"));
  // The salt is fixed for the cache's life, and the second derivation is a hit.
  const auto before = keys.stats();
  const auto again = StoredSecret::From("plain-pw").ScramVerifier(keys);
  EXPECT_EQ(again->ToString(), plain->ToString());
  EXPECT_EQ(keys.stats().hits, before.hits + 1);
  EXPECT_NE(StoredSecret::From("other-pw").ScramVerifier(keys)->salt, plain->salt);
  // Another cache (another process) picks another salt.
  ScramKeyCache other;
  EXPECT_NE(StoredSecret::From("plain-pw").ScramVerifier(other)->salt, plain->salt);
}

TEST(ScramKeyCache, HitsAndMisses) {
  ScramKeyCache keys;
  const ScramSecret s = ScramSecret::FromPassword("pw", "salty", 16);
  EXPECT_TRUE(keys.Verify(s, "pw"));  // miss, computed, kept
  EXPECT_TRUE(keys.Verify(s, "pw"));  // hit
  EXPECT_FALSE(keys.Verify(s, "px"));  // miss, not kept
  EXPECT_FALSE(keys.Verify(s, "px"));  // miss again
  auto st = keys.stats();
  EXPECT_EQ(st.hits, 1u);
  EXPECT_EQ(st.misses, 3u);
  EXPECT_EQ(st.size, 1u);

  // Derive keeps what it computes and returns what DeriveScramKeys would.
  const ScramKeys direct = DeriveScramKeys("backend-pw", "server-salt", 32);
  for (int i = 0; i < 2; ++i) {
    const ScramKeys cached = keys.Derive("backend-pw", "server-salt", 32);
    EXPECT_EQ(cached.client_key, direct.client_key);
    EXPECT_EQ(cached.stored_key, direct.stored_key);
    EXPECT_EQ(cached.server_key, direct.server_key);
  }
  st = keys.stats();
  EXPECT_EQ(st.hits, 2u);
  EXPECT_EQ(st.misses, 4u);
  EXPECT_EQ(st.size, 2u);
  // Each input is part of the key.
  keys.Derive("backend-pw", "server-salt", 33);
  keys.Derive("backend-pw", "server-salT", 32);
  keys.Derive("backend-pW", "server-salt", 32);
  EXPECT_EQ(keys.stats().misses, 7u);
  // A salt and password that run into each other are not confused.
  keys.Derive("ab", "c", 16);
  keys.Derive("b", "ca", 16);
  EXPECT_EQ(keys.stats().misses, 9u);
}

TEST(ScramKeyCache, AChangedSecretIsNeverServedFromTheCache) {
  ScramKeyCache keys;
  // The users file said "old-pw"; a reload says "new-pw".
  const StoredSecret before = StoredSecret::From(ScramSecret::FromPassword("old-pw", "salt-1", 16).ToString());
  ASSERT_TRUE(before.CheckCleartext("old-pw", "u", &keys));
  ASSERT_TRUE(before.CheckCleartext("old-pw", "u", &keys));  // now a hit

  struct Case {
    std::string secret;  // the reloaded secret
    std::string password;
    bool ok;
  };
  const std::vector<Case> cases = {
      // Same salt and iterations: "old-pw" hits the cache, and its keys no
      // longer match the secret's StoredKey.
      {ScramSecret::FromPassword("new-pw", "salt-1", 16).ToString(), "old-pw", false},
      {ScramSecret::FromPassword("new-pw", "salt-1", 16).ToString(), "new-pw", true},
      // New salt, new iteration count: a miss for either password.
      {ScramSecret::FromPassword("new-pw", "salt-2", 16).ToString(), "old-pw", false},
      {ScramSecret::FromPassword("new-pw", "salt-1", 17).ToString(), "old-pw", false},
      {ScramSecret::FromPassword("new-pw", "salt-2", 17).ToString(), "new-pw", true},
      // Now plain or md5: the cache is not asked.
      {"new-pw", "old-pw", false},
      {Md5Secret("new-pw", "u"), "old-pw", false},
      {"new-pw", "new-pw", true},
  };
  for (const auto& c : cases)
    EXPECT_EQ(StoredSecret::From(c.secret).CheckCleartext(c.password, "u", &keys), c.ok)
        << c.secret << " / " << c.password;

  // A plain secret's verifier changes with the password.
  const auto v1 = StoredSecret::From("old-pw").ScramVerifier(keys);
  const auto v2 = StoredSecret::From("new-pw").ScramVerifier(keys);
  EXPECT_TRUE(v2->Matches("new-pw"));
  EXPECT_FALSE(v2->Matches("old-pw"));
  EXPECT_NE(v1->stored_key, v2->stored_key);
}

TEST(ScramKeyCache, TheBoundHoldsAndTheLeastRecentlyUsedGoesFirst) {
  ScramKeyCache keys(4);
  EXPECT_EQ(keys.capacity(), 4u);
  for (int i = 0; i < 4; ++i) keys.Derive("pw" + std::to_string(i), "salt", 8);
  EXPECT_EQ(keys.stats().size, 4u);
  keys.Derive("pw0", "salt", 8);  // pw0 is now the most recent; pw1 the least
  keys.Derive("pw4", "salt", 8);  // evicts pw1
  EXPECT_EQ(keys.stats().size, 4u);
  const auto hits = keys.stats().hits;
  keys.Derive("pw0", "salt", 8);
  EXPECT_EQ(keys.stats().hits, hits + 1);
  const auto misses = keys.stats().misses;
  keys.Derive("pw1", "salt", 8);
  EXPECT_EQ(keys.stats().misses, misses + 1);

  for (int i = 0; i < 100; ++i) keys.Derive("many" + std::to_string(i), "salt", 2);
  EXPECT_EQ(keys.stats().size, 4u);

  ScramKeyCache one(0);  // a zero bound still keeps one entry
  one.Derive("a", "salt", 2);
  one.Derive("b", "salt", 2);
  EXPECT_EQ(one.stats().size, 1u);
}

TEST(ScramKeyCache, SharedBetweenThreads) {
  ScramKeyCache keys(8);
  const ScramSecret s = ScramSecret::FromPassword("pw", "salty", 8);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        EXPECT_TRUE(keys.Verify(s, "pw"));
        keys.Derive("pw" + std::to_string((i + t) % 16), "salt", 2);
      }
    });
  }
  for (auto& th : threads) th.join();
  const auto st = keys.stats();
  EXPECT_LE(st.size, 8u);
  EXPECT_EQ(st.hits + st.misses, 4u * 200 * 2);
}

TEST(ScramServer, ChecksAProofAgainstAPlainSecretsVerifier) {
  // The Postgres session's path for a plain secret: verifier from the cache,
  // the exchange against it; a client that knows the password gets in.
  ScramKeyCache keys;
  const auto verifier = StoredSecret::From("plain-pw").ScramVerifier(keys);
  ASSERT_TRUE(verifier);
  for (const std::string password : {"plain-pw", "plain-pW"}) {
    ScramServer server(verifier);
    // A client-first-message as libpq sends it, and the proof computed by hand.
    const std::string cnonce = "rOprNGfwEbeRWgbNEkqO";
    auto server_first = server.HandleClientFirst("n,,n=,r=" + cnonce);
    ASSERT_TRUE(server_first);
    std::string_view rest = *server_first, nonce;
    ASSERT_TRUE(TakeScramAttribute(&rest, 'r', &nonce));
    const ScramKeys k = DeriveScramKeys(password, verifier->salt, verifier->iterations);
    const std::string without_proof = "c=biws,r=" + std::string(nonce);
    const std::string auth_message = "n=,r=" + cnonce + "," + *server_first + "," + without_proof;
    const ScramKey signature = ScramHmac(k.stored_key, auth_message);
    ScramKey proof{};
    for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = k.client_key[i] ^ signature[i];
    bool ok = false;
    auto server_final = server.HandleClientFinal(without_proof + ",p=" + EncodeScramKey(proof), &ok);
    ASSERT_TRUE(server_final);
    EXPECT_EQ(ok, password == "plain-pw");
  }
}

}  // namespace
}  // namespace turnout::proxy
