// The safetensors parser against well-formed and hostile files. Torch-free:
// this target is also built under AddressSanitizer (safetensors_asan_test).
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "server/core/io/safetensors.h"

namespace detr::core::safetensors {
namespace {

std::vector<char> FileBytes(const std::string& header, const std::string& data, uint64_t claimed_length) {
  std::vector<char> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((claimed_length >> (8 * i)) & 0xff);
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.insert(bytes.end(), data.begin(), data.end());
  return bytes;
}

std::vector<char> FileBytes(const std::string& header, const std::string& data) {
  return FileBytes(header, data, header.size());
}

// Expects Parse to throw a FormatError whose message contains `needle`.
void ExpectRejected(const std::vector<char>& bytes, const std::string& needle) {
  try {
    File::Parse(bytes, "test.safetensors");
    FAIL() << "accepted a bad file; expected an error containing '" << needle << "'";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("test.safetensors"), std::string::npos) << e.what();
  }
}

const std::string kEightBytes(8, '\1');

TEST(SafetensorsTest, ParsesAWellFormedFile) {
  auto file =
      File::Parse(FileBytes(R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                            kEightBytes),
                  "ok");
  ASSERT_TRUE(file.contains("w"));
  EXPECT_EQ(file.info("w").numel(), 2);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  EXPECT_EQ(std::memcmp(file.data("w"), kEightBytes.data(), 8), 0);
}

TEST(SafetensorsTest, WriteThenReadRoundTrips) {
  const std::string path = std::string(DETR_TEST_OUTPUT_DIR) + "/roundtrip.safetensors";
  const float values[3] = {1.5f, -2.0f, 3.25f};
  const int64_t ids[2] = {7, -9};
  Write(path,
        {{"a.values", {DType::kF32, {3}, values, sizeof(values)}}, {"ids", {DType::kI64, {1, 2}, ids, sizeof(ids)}}},
        {{"source", "test"}});
  auto file = File::Read(path);
  EXPECT_EQ(file.info("a.values").shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(file.info("ids").shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(std::memcmp(file.data("a.values"), values, sizeof(values)), 0);
  EXPECT_EQ(std::memcmp(file.data("ids"), ids, sizeof(ids)), 0);
  EXPECT_EQ(file.metadata().at("source"), "test");
}

TEST(SafetensorsTest, RejectsAFileShorterThanTheLengthField) {
  ExpectRejected(std::vector<char>(5, 0), "shorter than the 8-byte header length");
}

TEST(SafetensorsTest, RejectsAHeaderOfGigabytesWithoutAllocatingIt) {
  ExpectRejected(FileBytes("{}", "", 6ull << 30), "exceeds the limit");
}

TEST(SafetensorsTest, RejectsAHeaderLengthPastTheEndOfFile) {
  ExpectRejected(FileBytes("{}", "", 4096), "runs past the end");
}

TEST(SafetensorsTest, RejectsAHeaderThatIsNotJson) {
  ExpectRejected(FileBytes("{\"w\": [1, 2", ""), "not valid JSON");
  ExpectRejected(FileBytes("[1, 2]", ""), "not a JSON object");
}

TEST(SafetensorsTest, RejectsOffsetsPastTheDataSection) {
  ExpectRejected(FileBytes(R"({"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", kEightBytes),
                 "tensor 'w': data_offsets [0, 16) run past the data section");
}

TEST(SafetensorsTest, RejectsATruncatedFile) {
  auto bytes = FileBytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", kEightBytes);
  bytes.resize(bytes.size() - 3);
  ExpectRejected(bytes, "truncated");
}

TEST(SafetensorsTest, RejectsASizeThatDisagreesWithDtypeAndShape) {
  ExpectRejected(FileBytes(R"({"w":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}})", kEightBytes),
                 "tensor 'w': holds 8 bytes but its dtype F64 and shape need 16");
}

TEST(SafetensorsTest, RejectsAnUnknownDtype) {
  ExpectRejected(FileBytes(R"({"w":{"dtype":"F8_E9","shape":[8],"data_offsets":[0,8]}})", kEightBytes),
                 "tensor 'w': unsupported dtype 'F8_E9'");
}

TEST(SafetensorsTest, RejectsMalformedEntries) {
  ExpectRejected(FileBytes(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", kEightBytes),
                 "not a non-negative integer");
  ExpectRejected(FileBytes(R"({"w":{"dtype":"F32","shape":[2]}})", kEightBytes), "lacks 'data_offsets'");
  ExpectRejected(FileBytes(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", kEightBytes),
                 "begin after they end");
  ExpectRejected(
      FileBytes(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})", kEightBytes),
      "overflows");
}

TEST(SafetensorsTest, RejectsOverlappingTensors) {
  ExpectRejected(FileBytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                           R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                           kEightBytes),
                 "overlap");
}

TEST(SafetensorsTest, ReadNamesAMissingFile) {
  EXPECT_THROW(File::Read("/nonexistent/weights.safetensors"), FormatError);
}

TEST(SafetensorsTest, ReadChecksTheLengthFieldAgainstTheFileSize) {
  const std::string path = std::string(DETR_TEST_OUTPUT_DIR) + "/huge-header.safetensors";
  {
    auto bytes = FileBytes("{}", "", 1ull << 40);
    std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  try {
    File::Read(path);
    FAIL() << "accepted a 1 TiB header length";
  } catch (const FormatError& e) {
    EXPECT_NE(std::string(e.what()).find("exceeds the limit"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace detr::core::safetensors
