// TLS, mTLS and bearer tokens on the gRPC port, with certificates made at
// test time by Debian's openssl; reflection v1; connections closed at their
// maximum age. Real servers in this process on 127.0.0.1, real clients (the
// gRPC library and the detr-client binary).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>
#include <yaml-cpp/yaml.h>

#include "grpc/health/v1/health.grpc.pb.h"
#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "tests/service/test_servers.h"

namespace detr::testing {
namespace {

const std::string kCerts = std::string(DETR_TEST_OUTPUT_DIR) + "/certs";

std::string Read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// What server/tools/make_dev_certs.sh makes (the tool the deployment docs
// use): a CA, a server certificate for localhost, detr-server and 127.0.0.1,
// a client certificate from that CA; and a second set whose client
// certificate comes from another CA.
void MakeCertificates() {
  const std::string tool = std::string(DETR_SOURCE_DIR) + "/server/tools/make_dev_certs.sh";
  ASSERT_EQ(std::system(("bash '" + tool + "' '" + kCerts + "' >/dev/null").c_str()), 0);
  ASSERT_EQ(std::system(("bash '" + tool + "' '" + kCerts + "/rogue' >/dev/null").c_str()), 0);
  std::ofstream(kCerts + "/tokens") << "# tokens\n\n  right-token  \nsecond-token\n";
  ASSERT_FALSE(Read(kCerts + "/server.crt").empty());
}

const char* kModel =
    "models:\n  - {name: alpha, architecture: {backbone: resnet18, hidden_dim: 32, nheads: 4, enc_layers: 1, "
    "dec_layers: 1, dim_feedforward: 64, num_queries: 5, num_classes: 91}, random_seed: 3, "
    "preprocessing: {shortest_edge: 64, longest_edge: 96}}\n";

std::string Png() {
  cv::Mat image(48, 64, CV_8UC3, cv::Scalar(30, 120, 200));
  std::vector<unsigned char> bytes;
  cv::imencode(".png", image, bytes);
  return {bytes.begin(), bytes.end()};
}

std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& client = "") {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = Read(kCerts + "/ca.crt");
  if (!client.empty()) {
    options.pem_cert_chain = Read(kCerts + "/" + client + ".crt");
    options.pem_private_key = Read(kCerts + "/" + client + ".key");
  }
  return grpc::SslCredentials(options);
}

// A Detect over a fresh channel: its status code.
grpc::StatusCode Detect(const std::string& target, const std::shared_ptr<grpc::ChannelCredentials>& credentials,
                        const std::string& token = "") {
  grpc::ChannelArguments arguments;
  arguments.SetInt("detr.test.fresh", std::rand());  // a connection of its own
  auto stub = v1::Detector::NewStub(grpc::CreateCustomChannel(target, credentials, arguments));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
  v1::DetectRequest request;
  request.mutable_image()->set_encoded(Png());
  v1::DetectResponse response;
  return stub->Detect(&context, request, &response).error_code();
}

class SecureTransportTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { MakeCertificates(); }
};

TEST_F(SecureTransportTest, ATlsServerServesTlsClientsAndRefusesPlaintext) {
  InProcessServer server(std::string(kModel) + "tls: {certificate: " + kCerts + "/server.crt, key: " + kCerts +
                         "/server.key}\n");
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(Detect(server.target(), Tls()), grpc::StatusCode::OK);
  EXPECT_EQ(Detect(server.target(), grpc::InsecureChannelCredentials()), grpc::StatusCode::UNAVAILABLE);
}

// With TLS on, the HTTP/JSON port is HTTPS with the same certificate (and
// client CA): its requests carry the same tokens as gRPC's.
TEST_F(SecureTransportTest, TheHttpPortSpeaksHttpsWithTheSameCertificates) {
  InProcessServer server(std::string(kModel) + "tls: {certificate: " + kCerts + "/server.crt, key: " + kCerts +
                         "/server.key}\nauth: {tokens_file: " + kCerts + "/tokens}\n");
  ASSERT_TRUE(server.ok());
  const std::string image = std::string(DETR_TEST_OUTPUT_DIR) + "/secure_https.png";
  std::ofstream(image, std::ios::binary) << Png();
  const std::string port = server.http_address().substr(server.http_address().rfind(':') + 1);
  const std::string https = "https://localhost:" + port;
  const auto curl = [](const std::string& args) {  // the HTTP status, 000 when none came
    std::unique_ptr<FILE, int (*)(FILE*)> pipe(
        ::popen(("curl -s --max-time 20 -o /dev/null -w '%{http_code}' " + args).c_str(), "r"), ::pclose);
    char code[8] = {};
    return std::string(std::fgets(code, sizeof code, pipe.get()) ? code : "");
  };
  EXPECT_EQ(curl("--cacert " + kCerts + "/ca.crt " + https + "/v2/health/ready"), "200");
  EXPECT_EQ(curl("--cacert " + kCerts +
                 "/ca.crt -H 'Authorization: Bearer right-token' -H 'Content-Type: image/png' "
                 "--data-binary @" +
                 image + " " + https + "/v2/models/alpha/infer"),
            "200");
  EXPECT_EQ(curl("--cacert " + kCerts + "/ca.crt -H 'Content-Type: image/png' --data-binary @" + image + " " + https +
                 "/v2/models/alpha/infer"),
            "401");
  // The image's health check, `detr-client health` with no TLS flag, speaks
  // TLS when its environment names the CA (compose.tls.yml sets it).
  const std::string health = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() + " --timeout 5 health";
  EXPECT_EQ(std::system(("DETR_CLIENT_TLS_CA=" + kCerts + "/ca.crt " + health + " > /dev/null 2>&1").c_str()), 0);
  EXPECT_NE(std::system((health + " > /dev/null 2>&1").c_str()), 0) << "plaintext to a TLS port";
  // Not a CA it trusts, and no TLS at all: nothing is answered in the clear.
  EXPECT_NE(curl("--cacert " + kCerts + "/rogue/ca.crt " + https + "/v2/health/ready"), "200");
  EXPECT_EQ(curl("http://localhost:" + port + "/v2/health/ready").substr(0, 3), "000");
}

TEST_F(SecureTransportTest, MutualTlsRefusesClientsWithoutACertificateOfItsCa) {
  InProcessServer server(std::string(kModel) + "tls: {certificate: " + kCerts + "/server.crt, key: " + kCerts +
                         "/server.key, client_ca: " + kCerts + "/ca.crt}\n");
  ASSERT_TRUE(server.ok());
  EXPECT_EQ(Detect(server.target(), Tls("client")), grpc::StatusCode::OK);
  EXPECT_EQ(Detect(server.target(), Tls()), grpc::StatusCode::UNAVAILABLE) << "no client certificate";
  EXPECT_EQ(Detect(server.target(), Tls("rogue/client")), grpc::StatusCode::UNAVAILABLE) << "another CA's";
  EXPECT_EQ(Detect(server.target(), grpc::InsecureChannelCredentials()), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(SecureTransportTest, BearerTokensGateEveryMethodButHealth) {
  InProcessServer server(std::string(kModel) + "auth: {tokens_file: " + kCerts + "/tokens, allow_plaintext: true}\n");
  ASSERT_TRUE(server.ok());
  const auto plaintext = grpc::InsecureChannelCredentials();
  EXPECT_EQ(Detect(server.target(), plaintext), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Detect(server.target(), plaintext, "wrong-token"), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(Detect(server.target(), plaintext, "right-token"), grpc::StatusCode::OK);
  EXPECT_EQ(Detect(server.target(), plaintext, "second-token"), grpc::StatusCode::OK);

  auto channel = grpc::CreateChannel(server.target(), plaintext);
  auto stub = v1::Detector::NewStub(channel);
  {
    grpc::ClientContext context;
    v1::ListModelsResponse models;
    EXPECT_EQ(stub->ListModels(&context, {}, &models).error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    grpc::ClientContext context;
    auto stream = stub->DetectStream(&context);
    stream->WritesDone();
    EXPECT_EQ(stream->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  }
  {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, {}, &response).ok()) << "health needs no token";
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

// detr-client's own flags: --tls-ca, --tls-cert/--tls-key, --token.
TEST_F(SecureTransportTest, TheClientSpeaksTlsAndTokens) {
  InProcessServer server(std::string(kModel) + "tls: {certificate: " + kCerts + "/server.crt, key: " + kCerts +
                         "/server.key, client_ca: " + kCerts + "/ca.crt}\nauth: {tokens_file: " + kCerts +
                         "/tokens}\n");
  ASSERT_TRUE(server.ok());
  const std::string image = std::string(DETR_TEST_OUTPUT_DIR) + "/secure.png";
  std::ofstream(image, std::ios::binary) << Png();
  const std::string client = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() + " --tls-ca " + kCerts +
                             "/ca.crt --tls-cert " + kCerts + "/client.crt --tls-key " + kCerts + "/client.key";
  EXPECT_EQ(std::system((client + " --token right-token --wait-for-ready detect " + image + " > /dev/null").c_str()),
            0);
  EXPECT_NE(std::system((client + " --token wrong-token detect " + image + " > /dev/null 2>&1").c_str()), 0);
  EXPECT_EQ(std::system((client + " health").c_str()), 0) << "health needs no token";
}

// detr-server's own flags, as deploy/docker/compose.tls.yml and the
// Kubernetes tls overlay use them, with detr-client's --tls-server-name and
// --token-file as their clients use them.
TEST_F(SecureTransportTest, TheServerFlagsTurnOnTlsAndTokens) {
  const std::string ca = kCerts + "/ca.crt", tokens = kCerts + "/tokens";
  ServerProcess server(kModel, "secure_flags",
                       {{"--tls-cert", kCerts + "/server.crt", "--tls-key", kCerts + "/server.key", "--tls-client-ca",
                         ca, "--tokens-file", tokens},
                        Tls("client")});
  ASSERT_GT(server.pid(), 0);
  EXPECT_EQ(Detect(server.target(), Tls("client"), "second-token"), grpc::StatusCode::OK);
  EXPECT_EQ(Detect(server.target(), Tls("client")), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Detect(server.target(), Tls()), grpc::StatusCode::UNAVAILABLE) << "no client certificate";
  EXPECT_EQ(Detect(server.target(), grpc::InsecureChannelCredentials()), grpc::StatusCode::UNAVAILABLE);

  const std::string image = std::string(DETR_TEST_OUTPUT_DIR) + "/secure_flags.png";
  std::ofstream(image, std::ios::binary) << Png();
  const std::string client = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() + " --tls-ca " + ca +
                             " --tls-cert " + kCerts + "/client.crt --tls-key " + kCerts + "/client.key";
  // The first token of the file ("right-token"), as a pod reads its Secret.
  EXPECT_EQ(std::system((client + " --token-file " + tokens + " detect " + image + " > /dev/null").c_str()), 0);
  // The name in the certificate when the address is not (a Service's name).
  EXPECT_EQ(std::system((client + " --tls-server-name detr-server health > /dev/null").c_str()), 0);
  EXPECT_NE(std::system((client + " --tls-server-name not-in-the-certificate health > /dev/null 2>&1").c_str()), 0);
}

// deploy/docker/compose.tls.yml, run as written: the server with the
// override's command, the load generator's client flags against it, with the
// containers' /etc/detr/tls standing for the certificates made here.
std::vector<std::string> ComposeCommand(const YAML::Node& compose, const std::string& service) {
  std::vector<std::string> args;
  for (auto arg : compose["services"][service]["command"].as<std::vector<std::string>>()) {
    if (arg.rfind("/etc/detr/tls/", 0) == 0) arg = kCerts + arg.substr(std::string("/etc/detr/tls").size());
    args.push_back(arg);
  }
  return args;
}

TEST_F(SecureTransportTest, TheComposeTlsExampleWorksAsWritten) {
  const auto compose = YAML::LoadFile(std::string(DETR_SOURCE_DIR) + "/deploy/docker/compose.tls.yml");
  auto server_args = ComposeCommand(compose, "detr-server");
  const auto config = std::find(server_args.begin(), server_args.end(), "--config");
  ASSERT_TRUE(config != server_args.end());
  server_args.erase(config, config + 2);  // this test's model instead of the image's config
  ServerProcess server(kModel, "compose_tls", {server_args, Tls()});
  ASSERT_GT(server.pid(), 0);
  EXPECT_EQ(Detect(server.target(), grpc::InsecureChannelCredentials()), grpc::StatusCode::UNAVAILABLE);

  // The load generator's flags up to its command, to this server.
  std::string client = DETR_CLIENT_BINARY;
  const auto client_args = ComposeCommand(compose, "loadgen");
  for (std::size_t i = 0; i < client_args.size() && client_args[i] != "bench"; ++i) {
    client += " '" + (client_args[i] == "detr-server:50051" ? server.target() : client_args[i]) + "'";
  }
  const std::string image = std::string(DETR_TEST_OUTPUT_DIR) + "/compose_tls.png";
  std::ofstream(image, std::ios::binary) << Png();
  // As the load generator reaches it: by the compose service's name.
  EXPECT_EQ(std::system((client + " --tls-server-name detr-server detect " + image + " > /dev/null").c_str()), 0);
}

TEST_F(SecureTransportTest, ATlsCertificateWithoutItsKeyIsRefusedAtStartUp) {
  const std::string command = std::string(DETR_SERVER_BINARY) + " --tls-cert " + kCerts + "/server.crt 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  ASSERT_TRUE(pipe);
  std::string output(4096, '\0');
  output.resize(std::fread(output.data(), 1, output.size(), pipe.get()));
  const int status = ::pclose(pipe.release());
  EXPECT_NE(status, 0);
  EXPECT_NE(output.find("--tls-key"), std::string::npos) << output;
}

// Tokens never travel in the clear by default: without TLS the server does
// not start, and says both ways out.
TEST_F(SecureTransportTest, TokensWithoutTlsAreRefusedUnlessPlaintextIsIntended) {
  const std::string config = std::string(DETR_TEST_OUTPUT_DIR) + "/plaintext_tokens.yaml";
  std::ofstream(config) << kModel << "listen: 127.0.0.1:0\nmetrics_listen: 127.0.0.1:0\n";
  const std::string command =
      std::string(DETR_SERVER_BINARY) + " --config " + config + " --tokens-file " + kCerts + "/tokens 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(::popen(command.c_str(), "r"), ::pclose);
  ASSERT_TRUE(pipe);
  std::string output(8192, '\0');
  output.resize(std::fread(output.data(), 1, output.size(), pipe.get()));
  EXPECT_NE(::pclose(pipe.release()), 0);
  EXPECT_NE(output.find("--tls-cert"), std::string::npos) << output;
  EXPECT_NE(output.find("allow_plaintext"), std::string::npos) << output;
}

TEST(ReflectionV1Test, ListsServicesAndServesTheirDescriptors) {
  InProcessServer server(kModel);
  ASSERT_TRUE(server.ok());
  auto stub = grpc::reflection::v1::ServerReflection::NewStub(
      grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1::ServerReflectionRequest request;
  grpc::reflection::v1::ServerReflectionResponse response;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request) && stream->Read(&response));
  std::set<std::string> services;
  for (const auto& service : response.list_services_response().service()) services.insert(service.name());
  EXPECT_TRUE(services.count("detr.v1.Detector"));
  EXPECT_TRUE(services.count("grpc.reflection.v1.ServerReflection"));
  EXPECT_TRUE(services.count("grpc.health.v1.Health"));

  request.set_file_containing_symbol("detr.v1.Detector");
  ASSERT_TRUE(stream->Write(request) && stream->Read(&response));
  ASSERT_GE(response.file_descriptor_response().file_descriptor_proto_size(), 1);
  google::protobuf::FileDescriptorProto file;
  ASSERT_TRUE(file.ParseFromString(response.file_descriptor_response().file_descriptor_proto(0)));
  EXPECT_EQ(file.name(), "detr/v1/detector.proto");
  EXPECT_EQ(file.service(0).name(), "Detector");

  request.set_file_containing_symbol("no.such.Thing");
  ASSERT_TRUE(stream->Write(request) && stream->Read(&response));
  EXPECT_EQ(response.error_response().error_code(), grpc::StatusCode::NOT_FOUND);
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
}

// max_connection_age closes a connection (after its grace), so that clients
// reconnect and spread over new pods; the next call reconnects by itself.
TEST(ConnectionSettingsTest, ConnectionsCloseAtTheirMaximumAge) {
  InProcessServer server(std::string(kModel) +
                         "connections: {max_connection_age_seconds: 1, max_connection_age_grace_seconds: 0.5}\n");
  ASSERT_TRUE(server.ok());
  auto channel = grpc::CreateChannel(server.target(), grpc::InsecureChannelCredentials());
  EXPECT_EQ(Detect(server.target(), grpc::InsecureChannelCredentials()), grpc::StatusCode::OK);
  ASSERT_TRUE(channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5)));
  EXPECT_EQ(channel->GetState(false), GRPC_CHANNEL_READY);
  // gRPC adds up to +10% of jitter to the age.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(6);
  while (channel->GetState(false) == GRPC_CHANNEL_READY && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_NE(channel->GetState(false), GRPC_CHANNEL_READY) << "the server kept the connection past its age";
}

}  // namespace
}  // namespace detr::testing
