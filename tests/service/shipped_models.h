// Checks shared by the tests of the shipped models (default_models_test,
// large_models_test): each serves a configuration of deploy/ through a real
// detr-server and measures it with the real client. The including test
// target defines DETR_DATA_BINARY and DETR_CLIENT_BINARY.
#pragma once

#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/command_run.h"
#include "tests/service/test_servers.h"

namespace detr::testing {

/// stdout and stderr of a shell command.
inline std::string CommandOutput(const std::string& command) { return RunCommand(command + " 2>&1").output; }

/// The server lists `count` models, each with its trained weights and the
/// shapes task's four class names.
inline void ExpectTrainedShapeModels(const ServerEndpoints& server, int count) {
  v1::ListModelsResponse list;
  grpc::ClientContext context;
  ASSERT_TRUE(server.Stub()->ListModels(&context, v1::ListModelsRequest(), &list).ok());
  ASSERT_EQ(list.models_size(), count);
  for (const auto& model : list.models()) {
    EXPECT_FALSE(model.random_weights()) << model.name() << " should load its trained weights";
    ASSERT_EQ(model.class_names_size(), 4) << model.name();
    EXPECT_EQ(model.class_names(1), "circle");
    EXPECT_EQ(model.class_names(3), "triangle");
  }
}

/// Draws a validation set with detr-data (DATA_ARGUMENTS) into the test's
/// output folder DIR_NAME and evaluates models on it through the server with
/// `detr-client eval MODEL_FLAGS` (`--model M`, or `--model-a A --model-b B`):
/// its figures, by model name.
inline nlohmann::json EvalOnFreshSet(const ServerEndpoints& server, const std::string& dir_name,
                                     const std::string& data_arguments, const std::string& model_flags) {
  const std::string dir = std::string(DETR_TEST_OUTPUT_DIR) + "/" + dir_name;
  const std::string make_data = std::string(DETR_DATA_BINARY) + " --output " + dir + " " + data_arguments;
  const auto data = RunCommand(make_data + " 2>&1");
  EXPECT_EQ(data.exit_code, 0) << make_data << "\n" << data.output;
  const std::string figures_path = dir + "/figures.json";
  const std::string eval = std::string(DETR_CLIENT_BINARY) + " --target " + server.target() + " eval --annotations " +
                           dir + "/val.json --images " + dir + "/val " + model_flags + " --json " + figures_path;
  const auto evaluated = RunCommand(eval + " 2>&1");
  EXPECT_EQ(evaluated.exit_code, 0) << eval << "\n" << evaluated.output;  // the client's error names the request
  std::ifstream in(figures_path);
  return nlohmann::json::parse(in);
}

/// EvalOnFreshSet of MODEL_A and MODEL_B, request by request side by side.
inline nlohmann::json EvalTwoModels(const ServerEndpoints& server, const std::string& dir_name,
                                    const std::string& data_arguments, const std::string& model_a,
                                    const std::string& model_b) {
  return EvalOnFreshSet(server, dir_name, data_arguments, "--model-a " + model_a + " --model-b " + model_b);
}

}  // namespace detr::testing
