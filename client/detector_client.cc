#include "client/detector_client.h"

#include <chrono>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace detr::client {

std::shared_ptr<grpc::Channel> MakeChannel(const ClientOptions& options) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(64 << 20);
  arguments.SetMaxSendMessageSize(64 << 20);
  if (!options.load_balancing.empty()) arguments.SetLoadBalancingPolicyName(options.load_balancing);
  return grpc::CreateCustomChannel(options.target, grpc::InsecureChannelCredentials(), arguments);
}

std::string ReadFileBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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

std::unique_ptr<grpc::ClientContext> MakeContext(double seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
  return context;
}

}  // namespace detr::client
