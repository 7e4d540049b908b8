// A thin client of detr.v1.Detector for the CLI and the tests.
#pragma once

#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "detr/v1/detector.grpc.pb.h"
#include "server/types/detection.h"

namespace detr::client {

struct ClientOptions {
  std::string target;          // host:port, or dns:///name:port for client-side balancing
  std::string load_balancing;  // "" (gRPC's pick_first) or "round_robin"
  double timeout_seconds = 60;
  std::string tls_ca;             // PEM: verify the server with this CA (TLS); empty with no cert: plaintext
  std::string tls_cert, tls_key;  // PEM: this client's certificate and key (mTLS)
  std::string tls_server_name;    // the name to verify the server's certificate against, if not the target's
  std::string token;              // sent as "authorization: Bearer <token>"
  bool wait_for_ready = false;    // wait (within the deadline) for the server instead of failing at once
};

/// A channel to the server. With "round_robin" and a dns:/// target, gRPC
/// spreads calls over every address the name resolves to (e.g. a Kubernetes
/// headless Service), instead of pinning one long-lived HTTP/2 connection.
std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options);

/// Reads a file's bytes; throws std::runtime_error naming the file.
std::string ReadFileBytes(const std::string& path);

/// The first token of a tokens file in the server's format (one per line,
/// '#' comments, blanks ignored), so that the client reads the same file (or
/// Kubernetes Secret) as the server; throws std::runtime_error if it has none.
std::string ReadFirstToken(const std::string& path);

/// Whether stderr is a terminal: progress lines ("\r...") go only there,
/// never into a log file or a CI transcript.
bool ProgressShown();

/// A response's detections as plain structs (for drawing and comparing).
Detections ToDetections(const v1::DetectResponse& response);

/// A fresh context for one call: the deadline, the bearer token and
/// wait-for-ready of `options`.
std::unique_ptr<grpc::ClientContext> MakeContext(const ClientOptions& options);

}  // namespace detr::client
