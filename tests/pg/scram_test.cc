// SCRAM-SHA-256 and md5 against published vectors (RFC 7677 §3) and
// against each other, with no server.
#include <gtest/gtest.h>

#include "proxy/pg/scram.h"

namespace turnout::proxy::pg {
namespace {

// RFC 7677 §3: user "user", password "pencil".
constexpr char kClientNonce[] = "rOprNGfwEbeRWgbNEkqO";
constexpr char kServerNonce[] = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
constexpr char kServerFirst[] = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
constexpr char kClientFinal[] =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
constexpr char kServerFinal[] = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramSecret PencilSecret() {
  std::string salt;
  // base64 "W22ZaJ0SNY7soEsUEjb6gQ=="
  const unsigned char raw[] = {0x5b, 0x6d, 0x99, 0x68, 0x9d, 0x12, 0x35, 0x8e,
                               0xec, 0xa0, 0x4b, 0x14, 0x12, 0x36, 0xfa, 0x81};
  salt.assign(reinterpret_cast<const char*>(raw), sizeof raw);
  return ScramSecret::FromPassword("pencil", salt, 4096);
}

TEST(ScramTest, ServerFollowsRfc7677Example) {
  ScramServer server(PencilSecret(), kServerNonce);
  // The RFC's client sends n=user; PostgreSQL ignores the name.
  auto first = server.HandleClientFirst(std::string("n,,n=user,r=") + kClientNonce);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(*first, kServerFirst);
  bool ok = false;
  auto final_msg = server.HandleClientFinal(kClientFinal, &ok);
  ASSERT_TRUE(final_msg.has_value());
  EXPECT_TRUE(ok);
  EXPECT_EQ(*final_msg, kServerFinal);
}

TEST(ScramTest, ClientFollowsRfc7677Example) {
  ScramClient client("pencil", kClientNonce);
  EXPECT_EQ(client.ClientFirst(), std::string("n,,n=,r=") + kClientNonce);
  // The RFC's auth message has n=user; ours n= (as libpq): recompute with a
  // server that sees our first message instead, then check it round-trips.
  ScramServer server(PencilSecret(), kServerNonce);
  auto first = server.HandleClientFirst(std::string("n,,n=,r=") + kClientNonce);
  ASSERT_TRUE(first);
  auto final_msg = client.HandleServerFirst(*first);
  ASSERT_TRUE(final_msg);
  bool ok = false;
  auto server_final = server.HandleClientFinal(*final_msg, &ok);
  ASSERT_TRUE(server_final);
  EXPECT_TRUE(ok);
  EXPECT_TRUE(client.VerifyServerFinal(*server_final));
  EXPECT_FALSE(client.VerifyServerFinal(kServerFinal));  // signed another auth message
}

TEST(ScramTest, WrongPasswordFailsTheProof) {
  ScramServer server(PencilSecret());
  ScramClient client("pen");
  auto first = server.HandleClientFirst(client.ClientFirst());
  ASSERT_TRUE(first);
  auto final_msg = client.HandleServerFirst(*first);
  ASSERT_TRUE(final_msg);
  bool ok = true;
  ASSERT_TRUE(server.HandleClientFinal(*final_msg, &ok));
  EXPECT_FALSE(ok);
}

TEST(ScramTest, UnknownUserRunsAMockExchangeThatFails) {
  ScramServer server(std::nullopt);
  ScramClient client("anything");
  auto first = server.HandleClientFirst(client.ClientFirst());
  ASSERT_TRUE(first);
  auto final_msg = client.HandleServerFirst(*first);
  ASSERT_TRUE(final_msg);
  bool ok = true;
  ASSERT_TRUE(server.HandleClientFinal(*final_msg, &ok));
  EXPECT_FALSE(ok);
}

TEST(ScramTest, MalformedAndChannelBindingMessagesAreRefused) {
  for (const char* bad : {"", "p=tls-server-end-point,,n=,r=abc", "x,,n=,r=abc", "n,a=admin,n=,r=abc", "n,,r=abc",
                          "n,,n=,", "n,,n=,r="}) {
    ScramServer server(PencilSecret());
    EXPECT_FALSE(server.HandleClientFirst(bad).has_value()) << bad;
  }
  ScramServer server(PencilSecret(), kServerNonce);
  ASSERT_TRUE(server.HandleClientFirst(std::string("n,,n=,r=") + kClientNonce));
  bool ok = true;
  EXPECT_FALSE(server.HandleClientFinal("c=biws,r=wrong,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=", &ok));
  EXPECT_FALSE(server.HandleClientFinal("c=biws,r=x", &ok));
  EXPECT_FALSE(server.HandleClientFinal(std::string("c=cD10bHM=,r=") + kClientNonce + kServerNonce + ",p=AAAA", &ok));
}

TEST(ScramTest, SecretParsesPostgresFormatAndRoundTrips) {
  const ScramSecret s = PencilSecret();
  auto parsed = ScramSecret::Parse(s.ToString());
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->iterations, 4096);
  EXPECT_EQ(parsed->stored_key, s.stored_key);
  EXPECT_TRUE(parsed->Matches("pencil"));
  EXPECT_FALSE(parsed->Matches("pencil2"));
  EXPECT_FALSE(ScramSecret::Parse("SCRAM-SHA-256$x:abc$def:ghi"));
  EXPECT_FALSE(ScramSecret::Parse("md5abc"));
}

TEST(Md5Test, MatchesPostgres) {
  // SELECT 'md5' || md5('secret' || 'alice'), and libpq's salted response.
  const std::string secret = Md5Secret("secret", "alice");
  EXPECT_EQ(secret, "md54a0a68b43b6cd5cf266fa02f196e2371");
  const std::uint8_t salt[4] = {1, 2, 3, 4};
  const std::string resp = Md5Response(secret, std::span<const std::uint8_t, 4>(salt, 4));
  EXPECT_EQ(resp, "md598a0412b9c31436fc53776e863350083");
  EXPECT_EQ(Md5Response(secret.substr(3), std::span<const std::uint8_t, 4>(salt, 4)), resp);
}

TEST(StoredSecretTest, EachKindChecksCleartext) {
  EXPECT_TRUE(StoredSecret::From("pw").CheckCleartext("pw", "u"));
  EXPECT_FALSE(StoredSecret::From("pw").CheckCleartext("pw2", "u"));
  const auto md5 = StoredSecret::From(Md5Secret("pw", "u"));
  EXPECT_EQ(md5.kind, StoredSecret::Kind::kMd5);
  EXPECT_TRUE(md5.CheckCleartext("pw", "u"));
  EXPECT_FALSE(md5.CheckCleartext("pw", "other"));
  const auto scram = StoredSecret::From(ScramSecret::FromPassword("pw", "salty", 16).ToString());
  EXPECT_EQ(scram.kind, StoredSecret::Kind::kScram);
  EXPECT_TRUE(scram.CheckCleartext("pw", "u"));
  EXPECT_FALSE(scram.CheckCleartext("px", "u"));
}

}  // namespace
}  // namespace turnout::proxy::pg
