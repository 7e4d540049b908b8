// What a loaded model holds between requests, and the batch sizes its
// backbone plans for: plain structs, so that the service sizes its memory
// budget and exports it without LibTorch.
#pragma once

#include <cstdint>
#include <vector>

namespace detr::core {

/// A model's memory outside its requests' activations.
struct ModelMemory {
  std::uint64_t weight_bytes = 0;  ///< parameters, buffers, and the backbone engine's own plain copy
  std::uint64_t plan_bytes = 0;    ///< weights reordered for the backbone's plans (layouts per input shape)
  int plans = 0;                   ///< backbone plans kept (one per input shape and batch chunk)
  int plan_capacity = 0;           ///< the most plans kept at once; 0 = no planned backbone
};

/// Batches run through the backbone in chunks of these sizes, largest first
/// (7 images = 4 + 2 + 1): each chunk size needs a plan of its own per input
/// shape, so planning every batch size from 1 to 8 would multiply plans.
inline const std::vector<int>& BatchChunkSizes() {
  static const std::vector<int> sizes = {8, 4, 2, 1};
  return sizes;
}

/// The chunk sizes batches of at most `max_batch_size` images run in,
/// smallest first (what a warm-up plans for each input shape).
inline std::vector<int> BatchChunksUpTo(int max_batch_size) {
  std::vector<int> chunks;
  for (auto it = BatchChunkSizes().rbegin(); it != BatchChunkSizes().rend(); ++it) {
    if (*it <= max_batch_size || chunks.empty()) chunks.push_back(*it);
  }
  return chunks;
}

}  // namespace detr::core
