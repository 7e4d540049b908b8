#include "client/detector_client.h"

#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>

namespace detr::client {

namespace {

std::shared_ptr<grpc::ChannelCredentials> Credentials(const ClientOptions& options) {
  if (options.tls_ca.empty() && options.tls_cert.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  if (!options.tls_ca.empty()) ssl.pem_root_certs = ReadFileBytes(options.tls_ca);
  if (!options.tls_cert.empty()) {
    ssl.pem_cert_chain = ReadFileBytes(options.tls_cert);
    ssl.pem_private_key = ReadFileBytes(options.tls_key);
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  if (!options.load_balancing.empty()) arguments.SetLoadBalancingPolicyName(options.load_balancing);
  // E.g. a probe inside the pod dials 127.0.0.1 but verifies the Service's name.
  if (!options.tls_server_name.empty()) arguments.SetSslTargetNameOverride(options.tls_server_name);
  return grpc::CreateCustomChannel(options.target, Credentials(options), arguments);
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string ReadFirstToken(const std::string& path) {
  std::istringstream lines(ReadFileBytes(path));
  std::string line;
  while (std::getline(lines, line)) {
    const auto begin = line.find_first_not_of(" \t\r");
    if (begin == std::string::npos || line[begin] == '#') continue;
    return line.substr(begin, line.find_last_not_of(" \t\r") + 1 - begin);
  }
  throw std::runtime_error(path + ": no token in it");
}

Detections ToDetections(const v1::DetectResponse& response) {
  Detections detections;
  for (const auto& d : response.detections()) {
    Detection out;
    out.class_id = d.class_id();
    out.class_name = d.class_name();
    out.score = d.score();
    out.box[0] = d.box().x0();
    out.box[1] = d.box().y0();
    out.box[2] = d.box().x1();
    out.box[3] = d.box().y1();
    detections.push_back(out);
  }
  return detections;
}

std::unique_ptr<grpc::ClientContext> MakeContext(const ClientOptions& options) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(options.timeout_seconds * 1e6)));
  if (!options.token.empty()) context->AddMetadata("authorization", "Bearer " + options.token);
  context->set_wait_for_ready(options.wait_for_ready);
  return context;
}

bool ProgressShown() { return ::isatty(STDERR_FILENO) == 1; }

}  // namespace detr::client
