// ModelRunner with a fake Detector (no LibTorch): batching by input shape,
// the queue's bound, cancelled and expired work, and a failing model.
#include <chrono>
#include <future>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "server/service/pipeline/model_runner.h"
#include "tests/service/fake_detector.h"

namespace detr::service {
namespace {

using namespace std::chrono_literals;

ModelEntry Entry(int max_batch_size = 4, int queue_capacity = 16, std::chrono::milliseconds delay = 50ms) {
  ModelEntry entry;
  entry.name = "fake";
  entry.batching.max_batch_size = max_batch_size;
  entry.batching.queue_capacity = queue_capacity;
  entry.batching.max_queue_delay = delay;
  return entry;
}

core::PreparedImage Image(int height, int width, float first_pixel = 0.5f) {
  core::PreparedImage image;
  image.height = image.original_height = height;
  image.width = image.original_width = width;
  image.pixels.assign(static_cast<std::size_t>(3 * height * width), first_pixel);
  return image;
}

// Submits a job and returns its outcome's future.
std::future<absl::StatusOr<InferenceOutcome>> Submit(ModelRunner& runner, core::PreparedImage image,
                                                     std::shared_ptr<const CallState> call = nullptr) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<InferenceOutcome>>>();
  auto future = promise->get_future();
  InferenceJob job;
  job.image = std::move(image);
  job.call = std::move(call);
  job.done = [promise](absl::StatusOr<InferenceOutcome> outcome) { promise->set_value(std::move(outcome)); };
  runner.Submit(std::move(job));
  return future;
}

class ModelRunnerTest : public ::testing::Test {
 protected:
  Metrics metrics_;
};

TEST_F(ModelRunnerTest, WarmsEveryCanvasAndBatchChunkBeforeTakingRequests) {
  auto entry = Entry(/*max_batch_size=*/6);
  entry.preprocessing.canvases = {{8, 8}, {8, 16}};
  auto detector = std::make_unique<testing::FakeDetector>();
  auto* fake = detector.get();
  ModelRunner runner(entry, std::move(detector), metrics_);
  // Per canvas: the chunks a batch of up to 6 runs in (1, 2, 4), then a full
  // batch of 6, whose pass is the largest.
  EXPECT_EQ(fake->batches(), (std::vector<int>{1, 2, 4, 6, 1, 2, 4, 6}));
  EXPECT_EQ(runner.pass_peak_bytes(), 6000u);  // the fake's 1000 bytes per image
  // Unpadded inputs take each image's size: nothing to warm.
  auto unpadded = std::make_unique<testing::FakeDetector>();
  auto* cold = unpadded.get();
  ModelRunner plain(Entry(), std::move(unpadded), metrics_);
  EXPECT_TRUE(cold->batches().empty());
  EXPECT_EQ(plain.pass_peak_bytes(), 0u);
}

TEST_F(ModelRunnerTest, BatchesImagesOfOneShapeAndKeepsOthersApart) {
  auto detector = std::make_unique<testing::FakeDetector>();
  auto* fake = detector.get();
  ModelRunner runner(Entry(), std::move(detector), metrics_);
  std::vector<std::future<absl::StatusOr<InferenceOutcome>>> outcomes;
  for (int i = 0; i < 3; ++i) outcomes.push_back(Submit(runner, Image(8, 8, 0.1f * static_cast<float>(i + 1))));
  outcomes.push_back(Submit(runner, Image(8, 16)));
  for (int i = 0; i < 4; ++i) {
    auto outcome = outcomes[static_cast<std::size_t>(i)].get();
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    EXPECT_EQ(outcome->batch_size, i < 3 ? 3 : 1);
    ASSERT_EQ(outcome->detections.size(), 1u);
    if (i < 3) {
      EXPECT_FLOAT_EQ(outcome->detections[0].score, 0.1f * static_cast<float>(i + 1));  // its own image
    }
    EXPECT_EQ(outcome->inference_memory_bytes, 1000u);  // the pass's peak / batch size
  }
  EXPECT_EQ(fake->batches(), (std::vector<int>{3, 1}));
}

TEST_F(ModelRunnerTest, AFullQueueRefusesAtOnce) {
  auto detector = std::make_unique<testing::FakeDetector>();
  detector->set_delay(300ms);
  ModelRunner runner(Entry(/*max_batch_size=*/1, /*queue_capacity=*/2, 0ms), std::move(detector), metrics_);
  auto busy = Submit(runner, Image(4, 4));
  std::this_thread::sleep_for(50ms);  // the worker has taken it
  auto first = Submit(runner, Image(4, 4)), second = Submit(runner, Image(4, 4));
  auto refused = Submit(runner, Image(4, 4));
  ASSERT_EQ(refused.wait_for(0ms), std::future_status::ready) << "a full queue must answer at once";
  EXPECT_EQ(refused.get().status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(busy.get().ok());
  EXPECT_TRUE(first.get().ok());
  EXPECT_TRUE(second.get().ok());
}

TEST_F(ModelRunnerTest, CancelledAndExpiredWorkIsDroppedWithItsOwnCode) {
  auto detector = std::make_unique<testing::FakeDetector>();
  auto* fake = detector.get();
  ModelRunner runner(Entry(4, 16, 100ms), std::move(detector), metrics_);
  auto cancelled_call = std::make_shared<CallState>();
  auto expiring_call = std::make_shared<CallState>(std::chrono::system_clock::now() + 20ms);
  auto cancelled = Submit(runner, Image(4, 4), cancelled_call);
  auto expired = Submit(runner, Image(4, 4), expiring_call);
  auto kept = Submit(runner, Image(4, 4), std::make_shared<CallState>());
  cancelled_call->Cancel();
  const auto cancelled_status = cancelled.get().status();
  EXPECT_EQ(cancelled_status.code(), absl::StatusCode::kCancelled) << cancelled_status;
  EXPECT_EQ(expired.get().status().code(), absl::StatusCode::kDeadlineExceeded);
  auto outcome = kept.get();
  ASSERT_TRUE(outcome.ok());
  EXPECT_EQ(outcome->batch_size, 1);  // the dropped ones never reached the model
  EXPECT_EQ(fake->batches(), std::vector<int>{1});
}

TEST_F(ModelRunnerTest, AFailingModelFailsItsBatchWithInternalAndKeepsServing) {
  auto detector = std::make_unique<testing::FakeDetector>();
  auto* fake = detector.get();
  ModelRunner runner(Entry(4, 16, 20ms), std::move(detector), metrics_);
  fake->set_fail(true);
  auto a = Submit(runner, Image(4, 4)), b = Submit(runner, Image(4, 4));
  for (auto* outcome : {&a, &b}) {
    const auto status = outcome->get().status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
    EXPECT_NE(status.message().find("model 'fake' failed"), absl::string_view::npos) << status;
  }
  fake->set_fail(false);
  EXPECT_TRUE(Submit(runner, Image(4, 4)).get().ok());
}

TEST_F(ModelRunnerTest, AStoppedRunnerFinishesWhatIsQueuedAndRefusesTheRest) {
  auto detector = std::make_unique<testing::FakeDetector>();
  ModelRunner runner(Entry(4, 16, 200ms), std::move(detector), metrics_);
  auto queued = Submit(runner, Image(4, 4));
  runner.Stop();
  EXPECT_TRUE(queued.get().ok());
  EXPECT_EQ(Submit(runner, Image(4, 4)).get().status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace detr::service
