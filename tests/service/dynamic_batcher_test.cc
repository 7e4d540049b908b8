// The batcher with a fake, slow workload (no LibTorch in the loop).
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>

#include "server/service/pipeline/dynamic_batcher.h"

namespace detr::service {
namespace {

using namespace std::chrono_literals;

struct FakeItem {
  int id = 0;
  std::string shape = "a";
  bool abandoned = false;
};

using Batcher = DynamicBatcher<FakeItem>;

// Records batches; each batch "computes" for `delay`.
class FakeModel {
 public:
  explicit FakeModel(std::chrono::milliseconds delay = 0ms) : delay_(delay) {}
  DynamicBatcher<FakeItem>::Hooks Hooks() {
    DynamicBatcher<FakeItem>::Hooks hooks;
    hooks.shape_key = [](const FakeItem& item) { return item.shape; };
    hooks.abandoned = [](const FakeItem& item) { return item.abandoned; };
    hooks.drop = [this](FakeItem&& item) {
      std::lock_guard<std::mutex> lock(mutex_);
      dropped_.push_back(item.id);
    };
    hooks.run = [this](std::vector<FakeItem>&& items) {
      std::this_thread::sleep_for(delay_);
      std::lock_guard<std::mutex> lock(mutex_);
      batches_.push_back(std::move(items));
    };
    return hooks;
  }
  std::vector<std::vector<FakeItem>> batches() {
    std::lock_guard<std::mutex> lock(mutex_);
    return batches_;
  }
  std::vector<int> dropped() {
    std::lock_guard<std::mutex> lock(mutex_);
    return dropped_;
  }

 private:
  std::chrono::milliseconds delay_;
  std::mutex mutex_;
  std::vector<std::vector<FakeItem>> batches_;
  std::vector<int> dropped_;
};

DynamicBatcher<FakeItem>::Options Options(std::size_t max_batch, std::chrono::milliseconds delay,
                                          std::size_t capacity = 64) {
  DynamicBatcher<FakeItem>::Options options;
  options.max_batch_size = max_batch;
  options.max_queue_delay = delay;
  options.queue_capacity = capacity;
  return options;
}

TEST(DynamicBatcherTest, ClosesABatchAtMaxSizeWithoutWaitingForTheDelay) {
  FakeModel model;
  const auto start = std::chrono::steady_clock::now();
  {
    DynamicBatcher<FakeItem> batcher(Options(4, 10s), model.Hooks());
    for (int i = 0; i < 4; ++i) {
      FakeItem item{i};
      ASSERT_EQ(batcher.TryEnqueue(item), Batcher::Admitted::kQueued);
    }
    while (model.batches().empty()) std::this_thread::sleep_for(1ms);
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  ASSERT_EQ(model.batches().size(), 1u);
  EXPECT_EQ(model.batches()[0].size(), 4u);
}

TEST(DynamicBatcherTest, ClosesAPartialBatchWhenTheOldestHasWaitedTheDelay) {
  FakeModel model;
  DynamicBatcher<FakeItem> batcher(Options(8, 50ms), model.Hooks());
  const auto start = std::chrono::steady_clock::now();
  FakeItem a{1}, b{2};
  batcher.TryEnqueue(a);
  batcher.TryEnqueue(b);
  while (model.batches().empty()) std::this_thread::sleep_for(1ms);
  const auto waited = std::chrono::steady_clock::now() - start;
  EXPECT_GE(waited, 45ms);
  EXPECT_LT(waited, 2s);
  EXPECT_EQ(model.batches()[0].size(), 2u);
}

TEST(DynamicBatcherTest, BatchesOnlyEqualShapesInArrivalOrder) {
  FakeModel model;
  {
    DynamicBatcher<FakeItem> batcher(Options(8, 30ms), model.Hooks());
    for (int i = 0; i < 6; ++i) {
      FakeItem item{i, i % 2 ? "b" : "a"};
      batcher.TryEnqueue(item);
    }
  }  // Stop() computes what is queued
  auto batches = model.batches();
  ASSERT_EQ(batches.size(), 2u);
  for (const auto& batch : batches) {
    for (size_t i = 0; i < batch.size(); ++i) {
      EXPECT_EQ(batch[i].shape, batch[0].shape);
      if (i > 0) {
        EXPECT_LT(batch[i - 1].id, batch[i].id);
      }
    }
  }
}

TEST(DynamicBatcherTest, AFullQueueRefusesAtOnce) {
  FakeModel model(200ms);
  DynamicBatcher<FakeItem> batcher(Options(1, 0ms, 2), model.Hooks());
  int accepted = 0, refused = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 10; ++i) {
    FakeItem item{i};
    (batcher.TryEnqueue(item) == Batcher::Admitted::kQueued ? accepted : refused)++;
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 100ms) << "TryEnqueue must not block";
  EXPECT_GE(refused, 7);
  EXPECT_LE(accepted, 3);  // two queued, perhaps one already taken by the worker
}

TEST(DynamicBatcherTest, AbandonedItemsAreDroppedBeforeCompute) {
  FakeModel model;
  {
    DynamicBatcher<FakeItem> batcher(Options(8, 20ms), model.Hooks());
    for (int i = 0; i < 4; ++i) {
      FakeItem item{i, "a", i % 2 == 1};
      batcher.TryEnqueue(item);
    }
  }
  EXPECT_EQ(model.dropped(), (std::vector<int>{1, 3}));
  ASSERT_EQ(model.batches().size(), 1u);
  EXPECT_EQ(model.batches()[0].size(), 2u);
}

TEST(DynamicBatcherTest, StopFinishesQueuedWorkAndRefusesNewWork) {
  FakeModel model(20ms);
  DynamicBatcher<FakeItem> batcher(Options(1, 0ms), model.Hooks());
  for (int i = 0; i < 5; ++i) {
    FakeItem item{i};
    batcher.TryEnqueue(item);
  }
  batcher.Stop();
  EXPECT_EQ(model.batches().size(), 5u);
  FakeItem late{99};
  EXPECT_EQ(batcher.TryEnqueue(late), Batcher::Admitted::kStopped);
}

// At 50 ms per item, an item behind three others cannot be computed within
// 60 ms: it is refused at once, while one with time to spare is queued, and
// an item alone in the queue is taken whatever its deadline.
TEST(DynamicBatcherTest, RefusesAnItemTheQueueWouldMakeLate) {
  FakeModel model(50ms);
  DynamicBatcher<FakeItem> batcher(Options(1, 0ms), model.Hooks());
  using Clock = std::chrono::steady_clock;
  EXPECT_EQ(batcher.ExpectedWait(), Clock::duration::zero()) << "no pace before the first batch";
  FakeItem first{0};
  ASSERT_EQ(batcher.TryEnqueue(first, Clock::now() + 1ms), Batcher::Admitted::kQueued) << "alone in the queue";
  while (model.batches().empty()) std::this_thread::sleep_for(1ms);
  for (int i = 1; i <= 4; ++i) {
    FakeItem item{i};
    ASSERT_EQ(batcher.TryEnqueue(item), Batcher::Admitted::kQueued);
  }
  EXPECT_GE(batcher.ExpectedWait(), 150ms);
  FakeItem hurried{5};
  EXPECT_EQ(batcher.TryEnqueue(hurried, Clock::now() + 60ms), Batcher::Admitted::kLate);
  EXPECT_EQ(hurried.id, 5) << "a refused item is left untouched";
  FakeItem patient{6};
  EXPECT_EQ(batcher.TryEnqueue(patient, Clock::now() + 10s), Batcher::Admitted::kQueued);
  batcher.Stop();
  EXPECT_EQ(model.batches().size(), 6u) << "everything queued was computed";
}

// Cancelled work still queued must not make the queue look full or slow: a
// client that cancelled a burst of frames would otherwise have the next
// clients refused. Before refusing, the queue sheds what nobody waits for.
TEST(DynamicBatcherTest, AbandonedItemsDoNotCountAsLoad) {
  using Clock = std::chrono::steady_clock;
  FakeModel model(200ms);
  DynamicBatcher<FakeItem> batcher(Options(1, 0ms, 4), model.Hooks());
  FakeItem first{0};
  ASSERT_EQ(batcher.TryEnqueue(first), Batcher::Admitted::kQueued);
  while (model.batches().empty()) std::this_thread::sleep_for(1ms);  // the pace is now ~200 ms per item
  FakeItem computing{1};
  ASSERT_EQ(batcher.TryEnqueue(computing), Batcher::Admitted::kQueued);
  while (batcher.depth() > 0) std::this_thread::sleep_for(1ms);  // the worker has taken it

  FakeItem waiting{2};
  ASSERT_EQ(batcher.TryEnqueue(waiting), Batcher::Admitted::kQueued);
  for (int i = 3; i <= 5; ++i) {
    FakeItem cancelled{i, "a", /*abandoned=*/true};
    ASSERT_EQ(batcher.TryEnqueue(cancelled), Batcher::Admitted::kQueued);
  }
  // Full by count (4 of 4), and 5 items at 200 ms would make a 1-s deadline
  // late; but only one item ahead is still wanted (2 x 400 ms < 1 s).
  FakeItem wanted{6};
  EXPECT_EQ(batcher.TryEnqueue(wanted, Clock::now() + 1s), Batcher::Admitted::kQueued);
  EXPECT_EQ(model.dropped(), (std::vector<int>{3, 4, 5})) << "shed at once, in order, and told";
  EXPECT_EQ(batcher.depth(), 2u);

  // Live items are never shed: the queue is as full or as slow as they make it.
  FakeItem hurried{7};
  EXPECT_EQ(batcher.TryEnqueue(hurried, Clock::now() + 60ms), Batcher::Admitted::kLate);
  batcher.Stop();
  std::vector<int> computed;
  for (const auto& batch : model.batches()) {
    for (const auto& item : batch) computed.push_back(item.id);
  }
  EXPECT_EQ(computed, (std::vector<int>{0, 1, 2, 6}));
}

}  // namespace
}  // namespace detr::service
