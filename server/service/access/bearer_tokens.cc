#include "server/service/access/bearer_tokens.h"

#include <cctype>
#include <fstream>
#include <stdexcept>

namespace detr::service {
namespace {

std::string_view Trimmed(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front()))) text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.remove_suffix(1);
  return text;
}

// Equal strings, in a time that depends only on the lengths.
bool SameBytes(std::string_view a, std::string_view b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (std::size_t i = 0; i < a.size(); ++i) {
    difference |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(i < b.size() ? b[i] : 0);
  }
  return difference == 0;
}

}  // namespace

BearerTokens BearerTokens::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument(path + ": cannot read the tokens file");
  BearerTokens tokens;
  std::string line;
  while (std::getline(in, line)) {
    const auto token = Trimmed(line);
    if (!token.empty() && token.front() != '#') tokens.tokens_.emplace_back(token);
  }
  if (tokens.tokens_.empty()) throw std::invalid_argument(path + ": no token in the tokens file");
  return tokens;
}

absl::Status BearerTokens::Check(std::string_view authorization) const {
  if (tokens_.empty()) return absl::OkStatus();
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size() || authorization.substr(0, kScheme.size()) != kScheme) {
    return absl::UnauthenticatedError("this server needs a bearer token: send 'authorization: Bearer <token>'");
  }
  const auto token = Trimmed(authorization.substr(kScheme.size()));
  bool known = false;
  for (const auto& candidate : tokens_) known |= SameBytes(token, candidate);  // no early exit
  if (!known) return absl::PermissionDeniedError("the bearer token is not one this server accepts");
  return absl::OkStatus();
}

}  // namespace detr::service
