#include <iostream>

#include "client/commands.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace detr::client {

int RunHealth(const ClientOptions& client, const std::string& model) {
  auto stub = grpc::health::v1::Health::NewStub(MakeChannel(client));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(model);
  grpc::health::v1::HealthCheckResponse response;
  auto context = MakeContext(client);
  const auto status = stub->Check(context.get(), request, &response);
  if (!status.ok()) {
    std::cout << (model.empty() ? "server" : "model '" + model + "'") << ": " << status.error_message() << "\n";
    return 1;
  }
  const auto name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
  std::cout << (model.empty() ? "server" : "model '" + model + "'") << ": " << name << "\n";
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
}

}  // namespace detr::client
