// detr-client models: what the server serves (ListModels), as a table or JSON.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "client/commands.h"
#include "server/types/status_code_name.h"

namespace detr::client {
namespace {

nlohmann::json ToJson(const v1::ListModelsResponse& list) {
  nlohmann::json out = {{"models", nlohmann::json::array()}, {"experiments", nlohmann::json::array()}};
  for (const auto& m : list.models()) {
    out["models"].push_back({{"name", m.name()},
                             {"attention",
                              {{"encoder.self", m.attention().encoder_self()},
                               {"decoder.self", m.attention().decoder_self()},
                               {"decoder.cross", m.attention().decoder_cross()}}},
                             {"precision", m.precision()},
                             {"backbone_engine", m.backbone_engine()},
                             {"parameters", m.parameter_count()},
                             {"weights", m.random_weights() ? "(seeded random)" : m.weights()},
                             {"max_batch_size", m.max_batch_size()},
                             {"max_queue_delay_seconds", m.max_queue_delay_seconds()},
                             {"classes", m.class_names_size()}});
  }
  for (const auto& e : list.experiments()) {
    nlohmann::json arms = nlohmann::json::array();
    for (const auto& arm : e.arms()) arms.push_back({{"model", arm.model()}, {"weight", arm.weight()}});
    out["experiments"].push_back({{"name", e.name()}, {"kind", e.kind()}, {"primary", e.primary()}, {"arms", arms}});
  }
  return out;
}

// The name column fits the longest model or experiment name (at least 16).
int NameWidth(const v1::ListModelsResponse& list) {
  std::size_t width = 16;
  for (const auto& m : list.models()) width = std::max(width, m.name().size());
  for (const auto& e : list.experiments()) width = std::max(width, e.name().size());
  return static_cast<int>(width);
}

void PrintTable(const v1::ListModelsResponse& list) {
  const int name_width = NameWidth(list);
  std::printf("%-*s %-14s %-14s %-14s %-9s %12s %6s\n", name_width, "model", "encoder.self", "decoder.self",
              "decoder.cross", "precision", "parameters", "batch");
  for (const auto& m : list.models()) {
    std::printf("%-*s %-14s %-14s %-14s %-9s %12llu %6u\n", name_width, m.name().c_str(),
                m.attention().encoder_self().c_str(), m.attention().decoder_self().c_str(),
                m.attention().decoder_cross().c_str(), m.precision().c_str(),
                static_cast<unsigned long long>(m.parameter_count()), m.max_batch_size());
  }
  if (list.experiments_size() == 0) return;
  std::printf("\n%-*s %-8s %s\n", name_width, "experiment", "kind", "arms");
  for (const auto& e : list.experiments()) {
    std::string arms;
    for (const auto& arm : e.arms()) {
      if (!arms.empty()) arms += ", ";
      arms += arm.model();
      if (e.kind() != "shadow") arms += " " + std::to_string(static_cast<int>(arm.weight() * 100 + 0.5)) + "%";
      if (arm.model() == e.primary()) arms += " (answers)";
    }
    std::printf("%-*s %-8s %s\n", name_width, e.name().c_str(), e.kind().c_str(), arms.c_str());
  }
}

}  // namespace

int RunModels(const ClientOptions& client, bool json) {
  auto stub = v1::Detector::NewStub(MakeChannel(client));
  v1::ListModelsResponse list;
  auto context = MakeContext(client);
  const auto status = stub->ListModels(context.get(), {}, &list);
  if (!status.ok()) {
    std::cerr << "models: " << StatusCodeName(status.error_code()) << ": " << status.error_message() << "\n";
    return 1;
  }
  if (json) {
    std::cout << ToJson(list).dump(2) << "\n";
  } else {
    PrintTable(list);
  }
  return 0;
}

}  // namespace detr::client
