// Bearer tokens: the optional check that a request comes from a client that
// holds one of the server's tokens ("authorization: Bearer <token>", in gRPC
// metadata or an HTTP header). The tokens come from a file, so that a
// Kubernetes Secret can supply it; SIGHUP re-reads it with the config.
// Health checks stay open (gRPC health conventions, and the Open Inference
// Protocol's liveness and readiness).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <absl/status/status.h>

namespace detr::service {

class BearerTokens {
 public:
  /// No tokens: every request passes.
  BearerTokens() = default;
  /// One token per line; blank lines and lines starting with '#' are
  /// skipped, surrounding spaces trimmed. Throws std::invalid_argument naming
  /// the file when it cannot be read or holds no token.
  static BearerTokens FromFile(const std::string& path);

  bool enabled() const { return !tokens_.empty(); }
  /// OK when no tokens are configured or `authorization` is "Bearer <a
  /// token>"; UNAUTHENTICATED when it is missing or not a bearer token;
  /// PERMISSION_DENIED when the token is not one of the server's. Compares
  /// in time independent of where a wrong token differs.
  absl::Status Check(std::string_view authorization) const;

 private:
  std::vector<std::string> tokens_;
};

/// The tokens in force, swapped whole when the configuration is reloaded.
class AccessControl {
 public:
  explicit AccessControl(BearerTokens tokens) : tokens_(std::make_shared<const BearerTokens>(std::move(tokens))) {}
  absl::Status Check(std::string_view authorization) const { return std::atomic_load(&tokens_)->Check(authorization); }
  void Replace(BearerTokens tokens) {
    std::atomic_store(&tokens_, std::make_shared<const BearerTokens>(std::move(tokens)));
  }

 private:
  std::shared_ptr<const BearerTokens> tokens_;  // read and written with std::atomic_load/store
};

}  // namespace detr::service
