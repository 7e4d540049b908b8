// The Open Inference Protocol front ends: the JSON binding's parsing, the
// conversions to and from the pipeline, and real servers answered over gRPC
// (a generated stub, and Python grpcio built only from the protocol's
// .proto) and over HTTP (curl), compared with detr.v1's answers for the same
// image and model.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "inference/open_inference_grpc.grpc.pb.h"
#include "server/service/oip/inference_protocol.h"
#include "server/service/oip/inference_json.h"
#include "tests/command_run.h"
#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

using nlohmann::json;
namespace oip = service::oip;

const std::string kOut = DETR_TEST_OUTPUT_DIR;

const char* kModel =
    "models:\n  - {name: alpha, architecture: {backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, "
    "dec_layers: 1, dim_feedforward: 64, num_queries: 5, num_classes: 91}, random_seed: 3, "
    "preprocessing: {shortest_edge: 64, longest_edge: 96}}\n"
    // beta: the same seed, so the same detections whichever arm serves
    "  - {name: beta, architecture: {backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, "
    "dec_layers: 1, dim_feedforward: 64, num_queries: 5, num_classes: 91}, random_seed: 3, "
    "preprocessing: {shortest_edge: 64, longest_edge: 96}}\n"
    "experiments:\n  - {name: both, kind: split, arms: [{model: alpha, weight: 0.5}, {model: beta, weight: 0.5}]}\n";

std::string Encode(const std::string& ext, const cv::Mat& bgr) {
  std::vector<unsigned char> bytes;
  cv::imencode(ext, bgr, bytes);
  return {bytes.begin(), bytes.end()};
}

std::string Png() {
  cv::Mat image(48, 64, CV_8UC3, cv::Scalar(30, 120, 200));
  cv::circle(image, {20, 24}, 12, cv::Scalar(250, 10, 10), -1);
  return Encode(".png", image);
}

// A ModelInferRequest for `model` whose one input, "image", is an encoded image.
inference::ModelInferRequest ImageInferRequest(const std::string& model, const std::string& image) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("image");
  input->set_datatype("BYTES");
  input->add_shape(1);
  input->mutable_contents()->add_bytes_contents(image);
  return request;
}

std::string WriteFile(const std::string& name, const std::string& bytes) {
  const std::string path = kOut + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

struct HttpAnswer {
  int status = 0;
  std::string body;
};

// curl with `args`: the status and the body.
HttpAnswer Curl(const std::string& args) {
  const auto output = RunCommand("curl -sS --max-time 60 -w '\\n%{http_code}' " + args).output;
  const auto newline = output.rfind('\n');
  if (newline == std::string::npos) return {};
  return {std::atoi(output.c_str() + newline + 1), output.substr(0, newline)};
}

std::string Base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(kAlphabet[(v >> shift) & 63]);
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(kAlphabet[(v >> 18) & 63]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

// Detections as (label, score, box) rows, whatever protocol carried them.
struct Row {
  int label;
  float score;
  float box[4];
};

std::vector<Row> RowsOf(const v1::DetectResponse& response) {
  std::vector<Row> rows;
  for (const auto& d : response.detections()) {
    rows.push_back({d.class_id(), d.score(), {d.box().x0(), d.box().y0(), d.box().x1(), d.box().y1()}});
  }
  return rows;
}

// From the JSON outputs of the HTTP binding, or of oip_grpc_client.py
// ({name: {data}} instead of a list).
std::vector<Row> RowsOf(const json& outputs) {
  const auto data = [&](const std::string& name) -> const json& {
    if (outputs.is_object()) return outputs.at(name).at("data");
    for (const auto& o : outputs) {
      if (o.at("name") == name) return o.at("data");
    }
    throw std::runtime_error("no output " + name);
  };
  std::vector<Row> rows;
  const auto& labels = data("labels");
  for (std::size_t i = 0; i < labels.size(); ++i) {
    Row row{labels[i].get<int>(), data("scores")[i].get<float>(), {}};
    for (int k = 0; k < 4; ++k) row.box[k] = data("boxes")[4 * i + k].get<float>();
    rows.push_back(row);
  }
  return rows;
}

void ExpectSameDetections(const std::vector<Row>& expected, const std::vector<Row>& actual, const std::string& what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  ASSERT_FALSE(expected.empty()) << what << ": nothing to compare";
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(actual[i].label, expected[i].label) << what << " #" << i;
    EXPECT_NEAR(actual[i].score, expected[i].score, 1e-5) << what << " #" << i;
    for (int k = 0; k < 4; ++k) EXPECT_NEAR(actual[i].box[k], expected[i].box[k], 1e-3) << what << " #" << i;
  }
}

// The sum of the samples of `name` whose labels include each of `labels`.
double Sum(const ServerEndpoints& server, const std::string& name, const std::vector<std::string>& labels) {
  std::istringstream lines(server.ScrapeMetrics());
  std::string line;
  double sum = 0;
  while (std::getline(lines, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    bool all = true;
    for (const auto& label : labels) all = all && line.find(label) != std::string::npos;
    if (all) sum += std::stod(line.substr(line.rfind(' ') + 1));
  }
  return sum;
}

v1::DetectResponse DetectV1(const ServerEndpoints& server, const std::string& image, const std::string& model) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  v1::DetectRequest request;
  request.mutable_image()->set_encoded(image);
  request.set_model(model);
  v1::DetectResponse response;
  const auto status = server.Stub()->Detect(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

// --- the JSON binding and the conversions, no server ---

TEST(InferenceJsonTest, ReadsBytesAsTextBase64OrB64ObjectsAndNestedUint8) {
  auto request = oip::ParseInferRequest(
      R"({"id": "r1", "parameters": {"score_threshold": 0.5, "max_detections": 3},
          "inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [{"b64": "aGVsbG8="}]}],
          "outputs": [{"name": "boxes"}]})",
      0, "alpha");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->model, "alpha");
  EXPECT_EQ(request->id, "r1");
  EXPECT_EQ(request->inputs.at(0).elements, std::vector<std::string>{"hello"});
  EXPECT_EQ(std::get<double>(request->parameters.at("score_threshold")), 0.5);
  EXPECT_EQ(std::get<std::int64_t>(request->parameters.at("max_detections")), 3);
  EXPECT_EQ(request->outputs, std::vector<std::string>{"boxes"});

  auto base64 = oip::ParseInferRequest(
      R"({"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1], "parameters": {"content_type": "base64"},
          "data": ["aGVsbG8="]}]})",
      0, "m");
  ASSERT_TRUE(base64.ok()) << base64.status();
  EXPECT_EQ(base64->inputs.at(0).elements, std::vector<std::string>{"hello"});

  auto raw = oip::ParseInferRequest(
      R"({"inputs": [{"name": "i", "datatype": "UINT8", "shape": [1, 2, 3], "data": [[[1, 2, 3], [4, 5, 255]]]}]})", 0,
      "m");
  ASSERT_TRUE(raw.ok()) << raw.status();
  EXPECT_EQ(raw->inputs.at(0).data, std::string("\x01\x02\x03\x04\x05\xff", 6));
}

TEST(InferenceJsonTest, ReadsTritonsBinaryDataExtension) {
  const std::string header =
      R"({"inputs": [{"name": "image", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 9}}]})";
  const std::string body = header + std::string("\x05\x00\x00\x00hello", 9);
  auto request = oip::ParseInferRequest(body, header.size(), "m");
  ASSERT_TRUE(request.ok()) << request.status();
  EXPECT_EQ(request->inputs.at(0).elements, std::vector<std::string>{"hello"});
  EXPECT_FALSE(oip::ParseInferRequest(body, body.size() + 1, "m").ok());
  EXPECT_FALSE(oip::ParseInferRequest(header + "\x05\x00", header.size(), "m").ok()) << "past the end";
}

TEST(InferenceJsonTest, RefusesWhatIsNotTheProtocolWithMessages) {
  const auto error = [](const std::string& body) {
    auto request = oip::ParseInferRequest(body, 0, "m");
    if (!request.ok()) return std::string(request.status().message());
    auto input = oip::ToDetectInput(*request);
    return input.ok() ? std::string() : std::string(input.status().message());
  };
  EXPECT_NE(error("{not json").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error(R"({"inputs": 3})").find("'inputs' must be a list"), std::string::npos);
  EXPECT_NE(error(R"({"inputs": []})").find("one input tensor"), std::string::npos);
  EXPECT_NE(error(R"({"inputs": [{"name": "i", "datatype": "FP32", "shape": [1], "data": [1.0]}]})")
                .find("BYTES (encoded) or UINT8"),
            std::string::npos);
  EXPECT_NE(error(R"({"inputs": [{"name": "i", "datatype": "UINT8", "shape": [2, 2], "data": [1, 2, 3, 4]}]})")
                .find("[height, width, 3]"),
            std::string::npos);
  EXPECT_NE(error(R"({"inputs": [{"name": "i", "datatype": "UINT8", "shape": [1, 1, 3], "data": [1, 2, 300]}]})")
                .find("[0, 255]"),
            std::string::npos);
  const std::string image = R"("inputs": [{"name": "i", "datatype": "BYTES", "shape": [1], "data": ["x"]}])";
  EXPECT_NE(error("{" + image + R"(, "outputs": [{"name": "masks"}]})").find("unknown output 'masks'"),
            std::string::npos);
  EXPECT_NE(error("{" + image + R"(, "parameters": {"temperature": 1}})").find("unknown parameter 'temperature'"),
            std::string::npos);
  EXPECT_NE(error("{" + image + R"(, "parameters": {"timeout": -5}})").find("'timeout' must be > 0"),
            std::string::npos);
  EXPECT_NE(error("{" + image + R"(, "parameters": {"classes": "1,x"}})").find("class ids"), std::string::npos);
  EXPECT_EQ(error("{" + image + R"(, "parameters": {"classes": "1, 3", "routing_key": "u", "timeout": 5000000}})"), "");
  EXPECT_FALSE(oip::PercentDecode("a%2").ok());
  EXPECT_EQ(*oip::PercentDecode("a%2Fb"), "a/b");
}

TEST(InferenceProtocolTest, AnswersTheOutputsAskedForWithTheServingModelAsAParameter) {
  service::DetectResult result;
  result.detections.push_back({17, "cat", 0.9f, {1, 2, 3, 4}});
  result.model = "softmax";
  result.experiment = "ab";
  result.batch_size = 2;
  oip::InferRequest request;
  request.model = "ab";
  request.outputs = {"scores", "class_names"};
  const auto response = oip::ToInferResponse(std::move(result), request);
  EXPECT_EQ(response.model, "ab");
  ASSERT_EQ(response.outputs.size(), 2u);
  EXPECT_EQ(response.outputs[0].name, "scores");
  EXPECT_EQ(response.outputs[0].fp32, std::vector<float>{0.9f});
  EXPECT_EQ(response.outputs[1].bytes, std::vector<std::string>{"cat"});
  EXPECT_EQ(std::get<std::string>(response.parameters.at("model")), "softmax");
  EXPECT_EQ(std::get<std::string>(response.parameters.at("experiment")), "ab");
  EXPECT_EQ(std::get<std::int64_t>(response.parameters.at("batch_size")), 2);
}

TEST(InferenceJsonTest, AnswersBinaryOutputsWhereTritonsClientsAskForThem) {
  // tritonclient.http with no outputs named: binary_data_output, a binding
  // parameter the model never sees.
  auto all = oip::ParseInferRequest(R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["x"]}],)"
                                    R"("parameters":{"binary_data_output":true,"score_threshold":0.5}})",
                                    0, "m");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_FALSE(all->parameters.count("binary_data_output"));
  EXPECT_TRUE(all->parameters.count("score_threshold"));
  oip::InferResponse response;
  response.model = "m";
  oip::OutputTensor boxes{"boxes", "FP32", {1, 4}, {1.f, 2.f, 3.f, 4.f}, {}, {}};
  oip::OutputTensor labels{"labels", "INT32", {1}, {}, {7}, {}};
  oip::OutputTensor names{"class_names", "BYTES", {1}, {}, {}, {"cat"}};
  response.outputs = {boxes, labels, names};
  auto body = oip::InferResponseJson(response, *all);
  ASSERT_GT(body.json_bytes, 0u);
  const auto head = json::parse(body.body.substr(0, body.json_bytes));
  EXPECT_EQ(head["outputs"][0]["parameters"]["binary_data_size"], 16);
  EXPECT_EQ(head["outputs"][1]["parameters"]["binary_data_size"], 4);
  EXPECT_EQ(head["outputs"][2]["parameters"]["binary_data_size"], 7);  // 4-byte length + "cat"
  EXPECT_FALSE(head["outputs"][0].contains("data"));
  const std::string binary = body.body.substr(body.json_bytes);
  ASSERT_EQ(binary.size(), 27u);
  float first_box[4];
  std::memcpy(first_box, binary.data(), 16);
  EXPECT_EQ(first_box[3], 4.f);
  EXPECT_EQ(binary.substr(20), std::string("\x03\0\0\0cat", 7));

  // Triton's C++ client names its outputs, each with binary_data.
  auto mixed = oip::ParseInferRequest(R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["x"]}],)"
                                      R"("outputs":[{"name":"boxes","parameters":{"binary_data":false}},)"
                                      R"({"name":"labels","parameters":{"binary_data":true}}]})",
                                      0, "m");
  ASSERT_TRUE(mixed.ok()) << mixed.status();
  body = oip::InferResponseJson(response, *mixed);
  const auto mixed_head = json::parse(body.body.substr(0, body.json_bytes));
  EXPECT_EQ(mixed_head["outputs"][0]["data"].size(), 4u);
  EXPECT_EQ(mixed_head["outputs"][1]["parameters"]["binary_data_size"], 4);
  EXPECT_EQ(body.body.size() - body.json_bytes, 4u);

  // Nothing binary asked: JSON alone, no header.
  auto plain =
      oip::ParseInferRequest(R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["x"]}]})", 0, "m");
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(oip::InferResponseJson(response, *plain).json_bytes, 0u);

  for (const char* bad : {R"("parameters":{"binary_data_output":"yes"})",
                          R"("outputs":[{"name":"boxes","parameters":{"classification":3}}])"}) {
    const auto refused = oip::ParseInferRequest(
        std::string(R"({"inputs":[{"name":"image","datatype":"BYTES","shape":[1],"data":["x"]}],)") + bad + "}", 0,
        "m");
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

// --- a real server ---

class InferenceServerTest : public ::testing::Test {
 protected:
  void SetUp() override { server_ = std::make_unique<InProcessServer>(kModel); }
  void TearDown() override { server_.reset(); }
  std::unique_ptr<InProcessServer> server_;
};

TEST_F(InferenceServerTest, ModelInferOverGrpcGivesDetectsDetections) {
  ASSERT_TRUE(server_->ok());
  const auto image = Png();
  const auto expected = RowsOf(DetectV1(*server_, image, "alpha"));
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  for (const std::string model : {"alpha", "both"}) {
    grpc::ClientContext context;
    auto request = ImageInferRequest(model, image);
    request.set_id("g1");
    inference::ModelInferResponse response;
    const auto status = stub->ModelInfer(&context, request, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.model_name(), model);
    EXPECT_EQ(response.id(), "g1");
    const auto served = response.parameters().at("model").string_param();
    EXPECT_TRUE(served == "alpha" || served == "beta") << served;
    ASSERT_EQ(response.outputs_size(), 4);
    ASSERT_EQ(response.raw_output_contents_size(), 4);
    // boxes FP32 [N, 4], scores FP32 [N], labels INT32 [N]
    const auto n = static_cast<std::size_t>(response.outputs(1).shape(0));
    std::vector<Row> rows(n);
    const auto* boxes = reinterpret_cast<const float*>(response.raw_output_contents(0).data());
    const auto* scores = reinterpret_cast<const float*>(response.raw_output_contents(1).data());
    const auto* labels = reinterpret_cast<const std::int32_t*>(response.raw_output_contents(2).data());
    for (std::size_t i = 0; i < n; ++i)
      rows[i] = {labels[i], scores[i], {boxes[4 * i], boxes[4 * i + 1], boxes[4 * i + 2], boxes[4 * i + 3]}};
    ExpectSameDetections(expected, rows, "ModelInfer " + model);
  }
  {
    grpc::ClientContext context;
    inference::ModelMetadataRequest request;
    request.set_name("both");
    inference::ModelMetadataResponse response;
    ASSERT_TRUE(stub->ModelMetadata(&context, request, &response).ok());
    EXPECT_EQ(response.properties().at("kind"), "experiment");
    EXPECT_EQ(response.outputs_size(), 4);
  }
  {
    grpc::ClientContext context;
    inference::ModelReadyRequest request;
    request.set_name("nope");
    inference::ModelReadyResponse response;
    EXPECT_EQ(stub->ModelReady(&context, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {
    grpc::ClientContext context;
    inference::ModelInferRequest request;
    request.set_model_name("alpha");
    inference::ModelInferResponse response;
    const auto status = stub->ModelInfer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("one input tensor"), std::string::npos) << status.error_message();
  }
}

TEST_F(InferenceServerTest, TritonsConfigurationAndStatisticsExtensionsOverGrpc) {
  ASSERT_TRUE(server_->ok());
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext context;
    inference::ServerMetadataResponse response;
    ASSERT_TRUE(stub->ServerMetadata(&context, {}, &response).ok());
    const std::vector<std::string> extensions(response.extensions().begin(), response.extensions().end());
    for (const char* wanted : {"model_configuration", "statistics", "binary_tensor_data"}) {
      EXPECT_NE(std::find(extensions.begin(), extensions.end(), wanted), extensions.end()) << wanted;
    }
  }
  {
    grpc::ClientContext context;
    inference::ModelConfigRequest request;
    request.set_name("alpha");
    inference::ModelConfigResponse response;
    ASSERT_TRUE(stub->ModelConfig(&context, request, &response).ok());
    const auto& config = response.config();
    EXPECT_EQ(config.name(), "alpha");
    EXPECT_EQ(config.max_batch_size(), 0) << "a request is one image";
    ASSERT_EQ(config.input_size(), 1);
    EXPECT_EQ(config.input(0).name(), "image");
    EXPECT_EQ(config.input(0).data_type(), inference::TYPE_STRING);
    ASSERT_EQ(config.output_size(), 4);
    EXPECT_EQ(config.output(0).data_type(), inference::TYPE_FP32);
    EXPECT_EQ(config.output(2).data_type(), inference::TYPE_INT32);
    EXPECT_TRUE(config.has_dynamic_batching()) << "the default batching takes up to 8 requests";
    EXPECT_EQ(config.dynamic_batching().preferred_batch_size(0), 8);
    EXPECT_FALSE(config.model_transaction_policy().decoupled());
  }
  for (const auto& [name, version] : std::vector<std::pair<std::string, std::string>>{{"nope", ""}, {"alpha", "2"}}) {
    grpc::ClientContext context;
    inference::ModelConfigRequest request;
    request.set_name(name);
    request.set_version(version);
    inference::ModelConfigResponse response;
    EXPECT_EQ(stub->ModelConfig(&context, request, &response).error_code(), grpc::StatusCode::NOT_FOUND) << name;
  }
  const auto statistics = [&](const std::string& name) {
    grpc::ClientContext context;
    inference::ModelStatisticsRequest request;
    request.set_name(name);
    inference::ModelStatisticsResponse response;
    EXPECT_TRUE(stub->ModelStatistics(&context, request, &response).ok());
    return response;
  };
  const auto before = statistics("both");
  ASSERT_EQ(before.model_stats_size(), 1);
  const auto alpha_before = statistics("alpha").model_stats(0);
  const auto beta_before = statistics("beta").model_stats(0);
  {
    grpc::ClientContext context;
    auto request = ImageInferRequest("both", Png());
    inference::ModelInferResponse response;
    ASSERT_TRUE(stub->ModelInfer(&context, request, &response).ok());
  }
  const auto after = statistics("both").model_stats(0);
  EXPECT_EQ(after.name(), "both");
  EXPECT_EQ(after.version(), "1");
  EXPECT_EQ(after.inference_stats().success().count(), before.model_stats(0).inference_stats().success().count() + 1);
  EXPECT_GT(after.inference_stats().success().ns(), after.inference_stats().compute_infer().ns());
  EXPECT_GT(after.inference_stats().compute_infer().ns(), 0u);
  EXPECT_GT(after.last_inference(), 0u);
  const auto runs = [](const inference::ModelStatistics& s) { return s.execution_count(); };
  EXPECT_EQ(runs(statistics("alpha").model_stats(0)) + runs(statistics("beta").model_stats(0)),
            runs(alpha_before) + runs(beta_before) + 1)
      << "one of the arms ran one pass";
  EXPECT_EQ(statistics("").model_stats_size(), 3) << "every model and experiment";
  {
    grpc::ClientContext context;
    inference::ModelStatisticsRequest request;
    request.set_name("nope");
    inference::ModelStatisticsResponse response;
    EXPECT_EQ(stub->ModelStatistics(&context, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  }
  {  // the protocol: raw_input_contents for every input or none, never beside contents
    grpc::ClientContext context;
    auto request = ImageInferRequest("alpha", Png());
    request.add_raw_input_contents(oip::JoinBytes({Png()}));
    inference::ModelInferResponse response;
    const auto status = stub->ModelInfer(&context, request, &response);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(status.error_message().find("one or the other"), std::string::npos) << status.error_message();
  }
}

TEST_F(InferenceServerTest, HttpAnswersConfigStatisticsHeadAndExpectContinueAsTritonsClientsNeed) {
  ASSERT_TRUE(server_->ok());
  const std::string url = "http://" + server_->http_address();
  auto config = json::parse(Curl(url + "/v2/models/alpha/versions/1/config").body);
  EXPECT_EQ(config["name"], "alpha");
  EXPECT_EQ(config["max_batch_size"], 0);
  EXPECT_EQ(config["input"][0]["data_type"], "TYPE_STRING");
  EXPECT_EQ(config["input"][0]["dims"], json::array({1}));
  EXPECT_EQ(config["model_transaction_policy"]["decoupled"], false);
  EXPECT_EQ(Curl(url + "/v2/models/alpha/versions/3/config").status, 404);
  const auto extensions = json::parse(Curl(url + "/v2").body)["extensions"];
  EXPECT_NE(std::find(extensions.begin(), extensions.end(), "statistics"), extensions.end()) << extensions;
  EXPECT_EQ(json::parse(Curl(url + "/v2/models/stats").body)["model_stats"].size(), 3u);
  EXPECT_EQ(json::parse(Curl(url + "/v2/models/both/stats").body)["model_stats"][0]["name"], "both");
  EXPECT_EQ(Curl(url + "/v2/models/nope/stats").status, 404);

  const auto metadata = json::parse(Curl(url + "/v2/models/alpha").body);
  EXPECT_EQ(metadata["properties"]["kind"], "model") << metadata;
  const auto ready = json::parse(Curl(url + "/v2/models/alpha/ready").body);
  EXPECT_EQ(ready["name"], "alpha");
  EXPECT_EQ(ready["ready"], true);

  // HEAD: a GET's headers, no body (curl -I would wait for a body it was promised otherwise).
  const auto head = RunCommand("curl -sS --max-time 10 -I " + url + "/v2/models/alpha").output;
  EXPECT_NE(head.find("200"), std::string::npos) << head;
  EXPECT_NE(head.find("Content-Length: " + std::to_string(Curl(url + "/v2/models/alpha").body.size())),
            std::string::npos)
      << head;

  // Expect: 100-continue, as curl sends it for bodies over 1 MiB: the body
  // follows the interim answer at once, not after curl's wait for it.
  const std::string padding(1500000, ' ');
  const auto large = WriteFile(
      "oip_large.json",
      json({{"inputs",
             {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {{{"b64", Base64(Png())}}}}}}}})
              .dump() +
          padding);
  const auto start = std::chrono::steady_clock::now();
  const auto answer = Curl(
      "--expect100-timeout 20 -H 'Expect: 100-continue' -H 'Content-Type: application/json' "
      "--data-binary @" +
      large + " " + url + "/v2/models/alpha/infer");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(answer.status, 200) << answer.body;
  EXPECT_LT(seconds, 15) << "the body waited for a 100 Continue that never came";

  // Refusals of the HTTP layer itself are the protocol's {"error"} too.
  const auto too_large = WriteFile("oip_too_large.bin", std::string((32 << 20) + 1, 'x'));
  const auto refused =
      Curl("-H 'Content-Type: application/json' --data-binary @" + too_large + " " + url + "/v2/models/alpha/infer");
  EXPECT_EQ(refused.status, 413);
  EXPECT_TRUE(json::parse(refused.body, nullptr, false).contains("error")) << refused.body;
  // An unknown model is 404 whatever the body.
  EXPECT_EQ(Curl("-X POST " + url + "/v2/models/nope/infer").status, 404);
}

TEST_F(InferenceServerTest, HttpJsonAndImageBodiesGiveDetectsDetections) {
  ASSERT_TRUE(server_->ok());
  const auto image = Png();
  const auto expected = RowsOf(DetectV1(*server_, image, "alpha"));
  const std::string url = "http://" + server_->http_address();
  const auto body = WriteFile(
      "oip_request.json",
      json({{"id", "h1"},
            {"inputs",
             {{{"name", "image"}, {"datatype", "BYTES"}, {"shape", {1}}, {"data", {{{"b64", Base64(image)}}}}}}}})
          .dump());
  auto answer =
      Curl("-H 'Content-Type: application/json' --data-binary @" + body + " " + url + "/v2/models/both/infer");
  ASSERT_EQ(answer.status, 200) << answer.body;
  auto response = json::parse(answer.body);
  EXPECT_EQ(response["model_name"], "both");
  EXPECT_EQ(response["id"], "h1");
  EXPECT_TRUE(response["parameters"]["model"] == "alpha" || response["parameters"]["model"] == "beta");
  ExpectSameDetections(expected, RowsOf(response["outputs"]), "HTTP JSON");

  const auto png = WriteFile("oip_image.png", image);
  answer = Curl("-H 'Content-Type: image/png' --data-binary @" + png + " '" + url +
                "/v2/models/alpha/infer?max_detections=2&id=h2'");
  ASSERT_EQ(answer.status, 200) << answer.body;
  response = json::parse(answer.body);
  EXPECT_EQ(response["id"], "h2");
  const auto two = std::vector<Row>(expected.begin(), expected.begin() + 2);
  ExpectSameDetections(two, RowsOf(response["outputs"]), "HTTP image body, max_detections=2");

  EXPECT_EQ(Curl(url + "/v2/health/live").status, 200);
  EXPECT_EQ(Curl(url + "/v2/health/ready").status, 200);
  EXPECT_EQ(Curl(url + "/v2/models/alpha/ready").status, 200);
  EXPECT_EQ(Curl(url + "/v2/models/alpha/versions/1/ready").status, 200);
  EXPECT_EQ(json::parse(Curl(url + "/v2/models/alpha").body)["platform"], "detr-serve_libtorch");
  EXPECT_EQ(json::parse(Curl(url + "/v2").body)["name"], "detr-serve");
}

TEST_F(InferenceServerTest, HttpErrorsFollowTheProtocolsJsonFormAndAreCounted) {
  ASSERT_TRUE(server_->ok());
  const std::string url = "http://" + server_->http_address();
  const std::vector<std::string> invalid = {R"(model="alpha")", R"(code="INVALID_ARGUMENT")"};
  const double before = Sum(*server_, "detr_requests_total", invalid);
  const auto junk = WriteFile("oip_junk.png", "this is not an image");
  auto answer = Curl("-H 'Content-Type: image/png' --data-binary @" + junk + " " + url + "/v2/models/alpha/infer");
  EXPECT_EQ(answer.status, 400);
  EXPECT_NE(json::parse(answer.body)["error"].get<std::string>().find("not JPEG, PNG, BMP or WebP"), std::string::npos)
      << answer.body;
  answer =
      Curl("-H 'Content-Type: application/json' --data-binary '{\"inputs\": 1}' " + url + "/v2/models/alpha/infer");
  EXPECT_EQ(answer.status, 400);
  EXPECT_EQ(Sum(*server_, "detr_requests_total", invalid), before + 2) << "each counted once, like detr.v1's";

  answer = Curl("-H 'Content-Type: image/png' --data-binary @" + junk + " " + url + "/v2/models/nope/infer");
  EXPECT_EQ(answer.status, 404);
  EXPECT_TRUE(json::parse(answer.body).contains("error"));
  EXPECT_EQ(Curl(url + "/v2/models/nope/ready").status, 404);
  EXPECT_EQ(Curl(url + "/v2/nothing").status, 404);
  EXPECT_EQ(Curl(url + "/v2/models/alpha/infer").status, 405);
}

// Both bindings run one infer function: a request refused after parsing (a
// bad timeout parameter) is logged with its id and counted, whichever
// binding it came by.
TEST_F(InferenceServerTest, BothBindingsKeepTheIdOfARefusedRequest) {
  ASSERT_TRUE(server_->ok());
  const CapturedLog log;
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto request = ImageInferRequest("alpha", Png());
  request.set_id("grpc-id-7");
  (*request.mutable_parameters())["timeout"].set_string_param("soon");
  inference::ModelInferResponse response;
  EXPECT_EQ(stub->ModelInfer(&context, request, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  const auto answer = Curl(
      "-H 'Content-Type: application/json' --data-binary "
      "'{\"id\": \"http-id-9\", \"parameters\": {\"timeout\": \"soon\"}, \"inputs\": "
      "[{\"name\": \"image\", \"datatype\": \"BYTES\", \"shape\": [1], \"data\": [\"x\"]}]}' "
      "http://" +
      server_->http_address() + "/v2/models/alpha/infer");
  EXPECT_EQ(answer.status, 400) << answer.body;
  const auto text = log.text();
  EXPECT_NE(text.find("request 'grpc-id-7' failed: INVALID_ARGUMENT"), std::string::npos) << text;
  EXPECT_NE(text.find("request 'http-id-9' failed: INVALID_ARGUMENT"), std::string::npos) << text;
}

TEST(InferenceAccessTest, TokensGateInferAndMetadataButNotHealth) {
  const std::string tokens = WriteFile("oip_tokens", "secret-token\n");
  InProcessServer server(std::string(kModel) + "auth: {tokens_file: " + tokens + ", allow_plaintext: true}\n");
  ASSERT_TRUE(server.ok());
  const std::string url = "http://" + server.http_address();
  const auto png = WriteFile("oip_access.png", Png());
  const std::string infer = "-H 'Content-Type: image/png' --data-binary @" + png + " " + url + "/v2/models/alpha/infer";
  EXPECT_EQ(Curl(infer).status, 401);
  EXPECT_EQ(Curl("-H 'Authorization: Bearer wrong' " + infer).status, 403);
  EXPECT_EQ(Curl("-H 'Authorization: Bearer secret-token' " + infer).status, 200);
  EXPECT_EQ(Curl(url + "/v2/models/alpha").status, 401);
  EXPECT_EQ(Curl(url + "/v2/health/ready").status, 200);
  EXPECT_EQ(Curl(url + "/v2/models/alpha/ready").status, 200);

  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  inference::ModelMetadataRequest request;
  request.set_name("alpha");
  inference::ModelMetadataResponse response;
  EXPECT_EQ(stub->ModelMetadata(&context, request, &response).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext ready_context;
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub->ServerReady(&ready_context, {}, &ready).ok());
  EXPECT_TRUE(ready.ready());
}

// The issue's "done when": a JPEG POSTed with curl to /v2/models/ab/infer and
// a ModelInfer from Python grpcio (a client built only from the protocol's
// .proto) give the detections that detr.v1 gives for the same image and the
// model that served them, on the built-in models of `make serve`.
TEST(InferenceEndToEndTest, CurlAndPythonGrpcioGetDetrV1sDetectionsFromTheBuiltInModels) {
  if (std::system(DETR_PYTHON " -c 'import grpc' 2> /dev/null") != 0) {
    GTEST_SKIP() << "python3-grpcio is not installed (deploy/install-deps.sh installs it)";
  }
  InProcessServer server(service::ServerConfig::Default());  // the built-in models of `make serve`
  ASSERT_TRUE(server.ok());
  const cv::Mat sample = cv::imread(std::string(DETR_SOURCE_DIR) + "/deploy/samples/shapes.png");
  ASSERT_FALSE(sample.empty());
  const std::string jpeg = Encode(".jpg", sample);
  const auto path = WriteFile("oip_e2e.jpg", jpeg);

  const auto answer = Curl("-H 'Content-Type: image/jpeg' --data-binary @" + path + " http://" + server.http_address() +
                           "/v2/models/ab/infer");
  ASSERT_EQ(answer.status, 200) << answer.body;
  const auto http = json::parse(answer.body);
  const std::string http_model = http["parameters"]["model"];
  ExpectSameDetections(RowsOf(DetectV1(server, jpeg, http_model)), RowsOf(http["outputs"]), "curl, " + http_model);

  const auto client =
      RunCommand(std::string(DETR_PYTHON) + " " + DETR_SOURCE_DIR + "/tests/service/oip_grpc_client.py " +
                 DETR_OIP_DESCRIPTOR + " " + server.target() + " ab " + path + " 2>&1");
  ASSERT_EQ(client.exit_code, 0) << client.output;
  const auto grpc = json::parse(client.output);
  EXPECT_EQ(grpc["model_name"], "ab");
  const std::string grpc_model = grpc["parameters"]["model"];
  ExpectSameDetections(RowsOf(DetectV1(server, jpeg, grpc_model)), RowsOf(grpc["outputs"]), "grpcio, " + grpc_model);
  EXPECT_EQ(grpc["outputs"]["class_names"]["data"].size(), grpc["outputs"]["labels"]["data"].size());
}

// perf_analyzer's whole sequence and Triton's HTTP clients' infer calls,
// replayed from their sources (tests/service/triton_clients_replay.py) on
// the built-in models, with the --input-data file docs/serving.md tells
// users to make: every answer equals detr.v1's for the model that served it.
TEST(InferenceEndToEndTest, PerfAnalyzersSequenceAndTritonsHttpClientsRunOnTheBuiltInModels) {
  if (std::system(DETR_PYTHON " -c 'import grpc' 2> /dev/null") != 0) {
    GTEST_SKIP() << "python3-grpcio is not installed (deploy/install-deps.sh installs it)";
  }
  InProcessServer server(service::ServerConfig::Default());  // the built-in models of `make serve`
  ASSERT_TRUE(server.ok());
  const cv::Mat sample = cv::imread(std::string(DETR_SOURCE_DIR) + "/deploy/samples/shapes.png");
  ASSERT_FALSE(sample.empty());
  const std::string jpeg = Encode(".jpg", sample);
  const auto image = WriteFile("triton_clients.jpg", jpeg);
  const auto input_data = kOut + "/triton_clients_input.json";
  ASSERT_EQ(std::system((std::string(DETR_PYTHON) + " " + DETR_SOURCE_DIR + "/server/tools/perf_analyzer_input.py " +
                         image + " > " + input_data)
                            .c_str()),
            0);
  // Every model and experiment of the built-in configuration.
  for (const std::string model :
       {"softmax", "optimization", "optimization-encoder", "ab", "ab-all-sites-square-only", "shadow"}) {
    const auto replay =
        RunCommand(std::string(DETR_PYTHON) + " " + DETR_SOURCE_DIR + "/tests/service/triton_clients_replay.py " +
                   DETR_OIP_DESCRIPTOR + " " + server.target() + " " + server.http_address() + " " + model + " " +
                   input_data + " 2>&1");
    ASSERT_EQ(replay.exit_code, 0) << replay.output;
    const auto report = json::parse(replay.output);
    for (const char* path :
         {"perf_analyzer_grpc", "perf_analyzer_http", "tritonclient_http_all_binary", "tritonclient_http_mixed"}) {
      const auto& run = report.at(path);
      const std::string served = run.at("served_by");
      ExpectSameDetections(RowsOf(DetectV1(server, jpeg, served)), RowsOf(run.at("outputs")),
                           std::string(path) + ", " + model + " served by " + served);
    }
    for (const char* path : {"perf_analyzer_grpc", "perf_analyzer_http"}) {
      const auto& run = report.at(path);
      EXPECT_EQ(run.at("max_batch_size"), 0);
      const auto& before = run.at("statistics_before");
      const auto& after = run.at("statistics_after");
      ASSERT_TRUE(before.is_object()) << path << ": the statistics extension is listed, so they are read";
      EXPECT_EQ(after.at("success").get<int>(), before.at("success").get<int>() + 1) << path;
      EXPECT_GT(after.at("compute_infer_ns").get<std::uint64_t>(), before.at("compute_infer_ns").get<std::uint64_t>())
          << path;
    }
    EXPECT_EQ(report.at("tritonclient_http_mixed").at("binary_outputs"), json::array({"boxes", "labels"}));
    EXPECT_EQ(report.at("tritonclient_http_all_binary").at("binary_outputs").size(), 4u);
  }
}

}  // namespace
}  // namespace detr::testing
