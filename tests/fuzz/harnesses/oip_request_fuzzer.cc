// Fuzzes what an Open Inference Protocol request goes through before the
// pipeline, in each of the forms a client can send it. The first byte picks
// the form:
//   0  HTTP JSON body, optionally followed by binary tensors: the next two
//      bytes are Inference-Header-Content-Length (0: none)
//   1  HTTP image body: the query string up to the first newline, then the image
//   2  gRPC ModelInferRequest (protobuf bytes)
// then the conversion to the pipeline's request and the parameters' checks,
// and, for the JSON form, an answer in the outputs it asked for.
#include <cstddef>
#include <cstdint>
#include <string>

#include "inference/open_inference_grpc.pb.h"
#include "server/service/oip/inference_grpc_messages.h"
#include "server/service/oip/inference_protocol.h"
#include "server/service/oip/inference_json.h"

namespace {

using namespace detr::service;

void Convert(absl::StatusOr<oip::InferRequest> request) {
  if (!request.ok()) return;
  (void)oip::Timeout(request->parameters);
  auto input = oip::ToDetectInput(*request);
  if (!input.ok()) return;
  DetectResult result;
  result.detections.resize(2);
  result.detections[1].class_name = "\xff\xfe not UTF-8";
  (void)oip::InferResponseJson(oip::ToInferResponse(std::move(result), *request), *request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 3) {
    case 0: {
      if (rest.size() < 2) return 0;
      const std::size_t json_bytes = static_cast<unsigned char>(rest[0]) | (static_cast<unsigned char>(rest[1]) << 8);
      Convert(oip::ParseInferRequest(rest.substr(2), json_bytes, "m"));
      break;
    }
    case 1: {
      const auto newline = rest.find('\n');
      const std::string query = rest.substr(0, newline);
      Convert(oip::ImageBodyRequest(newline == std::string::npos ? "" : rest.substr(newline + 1), query, "m"));
      break;
    }
    default: {
      inference::ModelInferRequest request;
      if (!request.ParseFromString(rest)) return 0;  // gRPC refuses these before us
      Convert(FromProto(request));
    }
  }
  return 0;
}
