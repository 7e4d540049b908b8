// detr-train end to end on a tiny synthetic set: the loss falls, a resumed
// run continues from its checkpoint, and the exported model serves.
#include <cstdio>
#include <filesystem>
#include <tuple>
#include <sys/wait.h>
#include <fstream>
#include <regex>
#include <string>

#include <gtest/gtest.h>

namespace {

const std::string kOut = DETR_TEST_OUTPUT_DIR;

std::pair<int, std::string> RunCommand(const std::string& command) {
  std::string output;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

std::vector<double> Losses(const std::string& log) {
  std::vector<double> losses;
  const std::regex line("step \\d+(?:/\\d+)? loss ([0-9.]+)");
  for (std::sregex_iterator it(log.begin(), log.end(), line), end; it != end; ++it)
    losses.push_back(std::stod((*it)[1]));
  return losses;
}

TEST(DetrTrainTest, LossFallsResumeContinuesAndTheModelServes) {
  const std::string data = kOut + "/train-shapes", out = kOut + "/train-out";
  ASSERT_EQ(
      RunCommand(std::string(DETR_DATA_BINARY) + " --output " + data + " --seed 2 --train 48 --val 4 --size 64").first,
      0);
  std::ofstream(kOut + "/tiny-shapes.json")
      << R"({"backbone": "resnet18", "hidden_dim": 64, "nheads": 4, "enc_layers": 1,
    "dec_layers": 2, "dim_feedforward": 128, "num_queries": 6, "num_classes": 4,
    "attention": {"decoder.cross": {"type": "optimization", "iterations": 3}}})";
  std::filesystem::remove_all(out);
  const std::string train = std::string(DETR_TRAIN_BINARY) + " --model-config " + kOut +
                            "/tiny-shapes.json --annotations " + data + "/train.json --images " + data +
                            "/train --output " + out + " --batch-size 8 --lr 1e-3 --threads 2";
  auto [code, log] = RunCommand(train + " --steps 50 --checkpoint-every 25 --keep-checkpoints");
  ASSERT_EQ(code, 0) << log;
  // Each checkpoint's weights stay for a training curve (server/tools/training_curve.py).
  for (const char* kept : {"/checkpoint-25.safetensors", "/checkpoint-50.safetensors"}) {
    EXPECT_TRUE(std::filesystem::exists(out + kept)) << kept;
  }
  const auto losses = Losses(log);
  ASSERT_EQ(losses.size(), 5u) << log;
  EXPECT_LT(losses.back(), losses.front()) << log;
  EXPECT_NE(log.find("step 50/50 loss"), std::string::npos) << log;
  EXPECT_NE(log.find(", ETA 0.0 min"), std::string::npos) << "the last line has nothing left:\n" << log;

  std::tie(code, log) = RunCommand(train + " --steps 60 --resume");
  ASSERT_EQ(code, 0) << log;
  EXPECT_NE(log.find("resumed at step 50"), std::string::npos) << log;
  EXPECT_NE(log.find("done at step 60"), std::string::npos) << log;

  std::tie(code, log) =
      RunCommand(std::string(DETR_PREDICT_BINARY) + " --model-config " + out + "/model.json --weights " + out +
                 "/model.safetensors --image " + data + "/val/000001.png --min-size 64 --threshold 0");
  EXPECT_EQ(code, 0) << log;
  EXPECT_NE(log.find("\"detections\""), std::string::npos) << log;
}

}  // namespace
