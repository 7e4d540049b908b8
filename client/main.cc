// detr-client: detect, draw, benchmark and compare models on a detr-server.
#include <CLI/CLI.hpp>
#include <iostream>
#include <string>

#include "client/commands.h"

namespace {

using detr::client::ClientOptions;

// Where the server is and how to reach it; also accepted after the subcommand
// (`detr-client detect IMG --target HOST:PORT`).
void AddConnectionOptions(CLI::App& app, ClientOptions& client, std::string& token_file) {
  app.add_option("--target", client.target,
                 "HOST:PORT, or dns:///NAME:PORT with --lb round_robin to spread calls over every server address")
      ->capture_default_str();
  app.add_option("--lb", client.load_balancing, "load-balancing policy: round_robin (default: pick_first)")
      ->check(CLI::IsMember({"", "pick_first", "round_robin"}));
  app.add_option("--timeout", client.timeout_seconds, "deadline of each call, seconds")->capture_default_str();
  // Also from the environment: the image's HEALTHCHECK runs `detr-client health`
  // with no flags, and a container serving TLS sets DETR_CLIENT_TLS_CA for it.
  app.add_option("--tls-ca", client.tls_ca, "TLS: verify the server against this CA certificate (PEM)")
      ->envname("DETR_CLIENT_TLS_CA")
      ->check(CLI::ExistingFile);
  auto* cert =
      app.add_option("--tls-cert", client.tls_cert, "mTLS: this client's certificate (PEM)")->check(CLI::ExistingFile);
  auto* key =
      app.add_option("--tls-key", client.tls_key, "mTLS: this client's private key (PEM)")->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  app.add_option("--tls-server-name", client.tls_server_name,
                 "TLS: verify the server's certificate against this name instead of the target's host");
  auto* token = app.add_option("--token", client.token, "bearer token, sent as 'authorization: Bearer TOKEN'");
  app.add_option("--token-file", token_file,
                 "bearer token: the first one in this file (the server's tokens file format)")
      ->check(CLI::ExistingFile)
      ->excludes(token);
  app.add_flag("--wait-for-ready", client.wait_for_ready,
               "wait for the server to become reachable (within --timeout) instead of failing at once");
  app.fallthrough();
}

CLI::App* AddDetect(CLI::App& app, detr::client::DetectCommand& detect) {
  auto* cmd = app.add_subcommand("detect", "detect objects in images; one JSON line per image");
  cmd->add_option("inputs", detect.inputs, "image files or directories")->required();
  cmd->add_option("--model", detect.model, "model or experiment (default: the server's route)");
  cmd->add_option("--routing-key", detect.routing_key, "sticky A/B key");
  cmd->add_option("--threshold", detect.threshold, "minimum score")->capture_default_str();
  cmd->add_option("--max-detections", detect.max_detections, "0 = all")->capture_default_str();
  cmd->add_option("--draw", detect.draw_dir, "write each image with its boxes drawn into this directory");
  return cmd;
}

CLI::App* AddBench(CLI::App& app, detr::client::BenchCommand& bench) {
  auto* cmd = app.add_subcommand("bench", "load test: latency percentiles, throughput, errors per code");
  cmd->add_option("--concurrency", bench.concurrency, "concurrent workers")->capture_default_str();
  auto* requests = cmd->add_option("--requests", bench.requests, "stop after this many requests");
  auto* duration = cmd->add_option("--duration", bench.duration, "stop after this many seconds");
  requests->excludes(duration);
  cmd->add_option("--rate", bench.rate, "requests per second in all (default: as fast as possible)");
  cmd->add_option("--model", bench.model, "model or experiment (default: the server's route)");
  cmd->add_option("images", bench.images, "images to send in turn (default: a generated one)");
  cmd->add_flag("--raw", bench.raw, "decode the images here and send raw RGB (no server-side decode)");
  cmd->add_flag("--json", bench.json, "print the report as JSON");
  return cmd;
}

CLI::App* AddAb(CLI::App& app, detr::client::AbCommand& ab) {
  auto* cmd = app.add_subcommand("ab", "the same images through two models: latency, memory, agreement");
  cmd->add_option("--model-a", ab.model_a, "model A")->required();
  cmd->add_option("--model-b", ab.model_b, "model B")->required();
  cmd->add_option("--threshold", ab.threshold, "score threshold for the agreement")->capture_default_str();
  cmd->add_option("--repeats", ab.repeats, "send each image this many times")->capture_default_str();
  cmd->add_option("images", ab.images, "image files or directories")->required();
  cmd->add_flag("--json", ab.json, "print the figures as JSON");
  return cmd;
}

CLI::App* AddEval(CLI::App& app, detr::client::EvalCommand& eval) {
  auto* cmd = app.add_subcommand("eval", "COCO AP/AR of a model (or two, side by side) on an annotated image set");
  cmd->add_option("--annotations", eval.annotations, "COCO annotations JSON")->required()->check(CLI::ExistingFile);
  cmd->add_option("--images", eval.images, "directory of the annotated images")
      ->required()
      ->check(CLI::ExistingDirectory);
  auto* model = cmd->add_option("--model", eval.model_a, "model or experiment (default: the server's route)");
  auto* model_a = cmd->add_option("--model-a", eval.model_a, "first model of a side-by-side table");
  auto* model_b = cmd->add_option("--model-b", eval.model_b, "second model of a side-by-side table");
  cmd->add_option("--json", eval.json_path, "also write AP, AR and latency per model to this JSON file");
  model->excludes(model_a)->excludes(model_b);
  model_b->needs(model_a);
  return cmd;
}

}  // namespace

int main(int argc, char** argv) {
  ClientOptions client;
  client.target = "127.0.0.1:50051";
  CLI::App app{"detr-client: talks to a detr-server over gRPC."};
  std::string token_file;
  AddConnectionOptions(app, client, token_file);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("detr-client ") + DETR_VERSION);

  detr::client::DetectCommand detect;
  auto* detect_cmd = AddDetect(app, detect);
  detr::client::BenchCommand bench;
  auto* bench_cmd = AddBench(app, bench);
  detr::client::AbCommand ab;
  auto* ab_cmd = AddAb(app, ab);
  bool models_json = false;
  auto* models_cmd = app.add_subcommand("models", "the server's models (attention per site) and experiments");
  models_cmd->add_flag("--json", models_json, "print them as JSON");
  detr::client::EvalCommand eval;
  auto* eval_cmd = AddEval(app, eval);
  std::string health_model;
  auto* health_cmd = app.add_subcommand("health", "exit code 0 only when the server (or model) is SERVING");
  health_cmd->add_option("--model", health_model, "a model's health instead of the server's");

  CLI11_PARSE(app, argc, argv);
  try {
    if (!token_file.empty()) client.token = detr::client::ReadFirstToken(token_file);
    if (*detect_cmd) return detr::client::RunDetect(client, detect);
    if (*bench_cmd) return detr::client::RunBench(client, bench);
    if (*ab_cmd) return detr::client::RunAb(client, ab);
    if (*health_cmd) return detr::client::RunHealth(client, health_model);
    if (*models_cmd) return detr::client::RunModels(client, models_json);
    if (*eval_cmd) return detr::client::RunEval(client, eval);
  } catch (const std::exception& e) {
    std::cerr << "detr-client: " << e.what() << "\n";
    return 1;
  }
  return 2;
}
