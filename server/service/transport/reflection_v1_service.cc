#include "server/service/transport/reflection_v1_service.h"

#include <set>

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>

namespace detr::service {
namespace {

namespace reflection = grpc::reflection::v1;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

// `file` and every file it depends on, each once, serialized.
void AddWithDependencies(const FileDescriptor* file, std::set<std::string>& seen,
                         reflection::FileDescriptorResponse* out) {
  if (file == nullptr || !seen.insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  proto.SerializeToString(out->add_file_descriptor_proto());
  for (int i = 0; i < file->dependency_count(); ++i) AddWithDependencies(file->dependency(i), seen, out);
}

void Error(reflection::ServerReflectionResponse& response, grpc::StatusCode code, const std::string& message) {
  response.mutable_error_response()->set_error_code(code);
  response.mutable_error_response()->set_error_message(message);
}

// Serves one stream: read a request, write its answer, until the client is done.
class ReflectionStream final
    : public grpc::ServerBidiReactor<reflection::ServerReflectionRequest, reflection::ServerReflectionResponse> {
 public:
  explicit ReflectionStream(const ReflectionV1Service& service) : service_(service) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) return Finish(grpc::Status::OK);
    response_ = service_.Answer(request_);
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client stopped reading"));
    StartRead(&request_);
  }
  void OnDone() override { delete this; }  // gRPC's reactor contract: the last event

 private:
  const ReflectionV1Service& service_;
  reflection::ServerReflectionRequest request_;
  reflection::ServerReflectionResponse response_;
};

}  // namespace

grpc::ServerBidiReactor<reflection::ServerReflectionRequest, reflection::ServerReflectionResponse>*
ReflectionV1Service::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new ReflectionStream(*this);  // gRPC's contract: it deletes itself when done
}

reflection::ServerReflectionResponse ReflectionV1Service::Answer(
    const reflection::ServerReflectionRequest& request) const {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  reflection::ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  std::set<std::string> seen;
  switch (request.message_request_case()) {
    case reflection::ServerReflectionRequest::kListServices:
      for (const auto& name : services_) response.mutable_list_services_response()->add_service()->set_name(name);
      break;
    case reflection::ServerReflectionRequest::kFileByFilename: {
      const auto* file = pool->FindFileByName(request.file_by_filename());
      if (file == nullptr) {
        Error(response, grpc::StatusCode::NOT_FOUND, "no file named " + request.file_by_filename());
      } else {
        AddWithDependencies(file, seen, response.mutable_file_descriptor_response());
      }
      break;
    }
    case reflection::ServerReflectionRequest::kFileContainingSymbol: {
      const auto* file = pool->FindFileContainingSymbol(request.file_containing_symbol());
      if (file == nullptr) {
        Error(response, grpc::StatusCode::NOT_FOUND, "no symbol named " + request.file_containing_symbol());
      } else {
        AddWithDependencies(file, seen, response.mutable_file_descriptor_response());
      }
      break;
    }
    case reflection::ServerReflectionRequest::kFileContainingExtension: {
      const auto& wanted = request.file_containing_extension();
      const auto* type = pool->FindMessageTypeByName(wanted.containing_type());
      const auto* extension = type ? pool->FindExtensionByNumber(type, wanted.extension_number()) : nullptr;
      if (extension == nullptr) {
        Error(response, grpc::StatusCode::NOT_FOUND, "no such extension of " + wanted.containing_type());
      } else {
        AddWithDependencies(extension->file(), seen, response.mutable_file_descriptor_response());
      }
      break;
    }
    case reflection::ServerReflectionRequest::kAllExtensionNumbersOfType: {
      const auto* type = pool->FindMessageTypeByName(request.all_extension_numbers_of_type());
      if (type == nullptr) {
        Error(response, grpc::StatusCode::NOT_FOUND, "no type named " + request.all_extension_numbers_of_type());
        break;
      }
      std::vector<const google::protobuf::FieldDescriptor*> extensions;
      pool->FindAllExtensions(type, &extensions);
      auto* out = response.mutable_all_extension_numbers_response();
      out->set_base_type_name(type->full_name());
      for (const auto* extension : extensions) out->add_extension_number(extension->number());
      break;
    }
    default: Error(response, grpc::StatusCode::INVALID_ARGUMENT, "the request names nothing to reflect on");
  }
  return response;
}

}  // namespace detr::service
