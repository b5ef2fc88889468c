#include "proxy/pg/scram.h"

#include <openssl/crypto.h>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace turnout::proxy::pg {
namespace {

absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

ScramClient::ScramClient(std::string password, std::string client_nonce, ScramKeyCache* keys)
    : password_(std::move(password)), client_nonce_(std::move(client_nonce)), keys_(keys) {
  if (client_nonce_.empty()) client_nonce_ = RandomNonce();
}

std::string ScramClient::ClientFirst() {
  // PostgreSQL ignores the SCRAM user name (the startup packet has it), and
  // libpq sends it empty; "n,," means the client does not do channel binding.
  client_first_bare_ = "n=,r=" + client_nonce_;
  return "n,," + client_first_bare_;
}

std::optional<std::string> ScramClient::HandleServerFirst(std::string_view server_first) {
  std::string_view rest = server_first, nonce, salt_b64, iter_text;
  if (!TakeScramAttribute(&rest, 'r', &nonce) || !TakeScramAttribute(&rest, 's', &salt_b64) ||
      !TakeScramAttribute(&rest, 'i', &iter_text))
    return std::nullopt;
  if (nonce.size() <= client_nonce_.size() || nonce.substr(0, client_nonce_.size()) != client_nonce_ ||
      !IsScramNonce(nonce))
    return std::nullopt;
  std::string salt;
  int iterations = 0;
  if (!absl::Base64Unescape(Av(salt_b64), &salt) || salt.empty()) return std::nullopt;
  if (!absl::SimpleAtoi(Av(iter_text), &iterations) || iterations <= 0 || iterations > 10'000'000)
    return std::nullopt;

  const ScramKeys keys = keys_ != nullptr ? keys_->Derive(password_, salt, iterations)
                                          : DeriveScramKeys(password_, salt, iterations);
  std::string without_proof = "c=biws,r=" + std::string(nonce);
  std::string auth_message = client_first_bare_;
  auth_message += ',';
  auth_message.append(server_first);
  auth_message += ',';
  auth_message += without_proof;
  // RFC 5802 §3: ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage).
  const ScramKey client_signature = ScramHmac(keys.stored_key, auth_message);
  ScramKey proof{};
  for (std::size_t i = 0; i < proof.size(); ++i) proof[i] = keys.client_key[i] ^ client_signature[i];
  server_signature_ = ScramHmac(keys.server_key, auth_message);
  return without_proof + ",p=" + EncodeScramKey(proof);
}

bool ScramClient::VerifyServerFinal(std::string_view server_final) const {
  std::string_view rest = server_final, v;
  if (!TakeScramAttribute(&rest, 'v', &v)) return false;
  ScramKey sig{};
  if (!DecodeScramKey(v, &sig)) return false;
  return CRYPTO_memcmp(sig.data(), server_signature_.data(), sig.size()) == 0;
}

}  // namespace turnout::proxy::pg
