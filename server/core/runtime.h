// Process-wide LibTorch settings for inference.
#pragma once

#include <string>

namespace detr {

/// Sets LibTorch's intra-op threads (0 = every core). Debian's LibTorch
/// starts with one, which leaves the other cores idle.
void ConfigureThreads(int intra_op_threads);

/// One line for logs: LibTorch version, threads, and the BLAS/oneDNN build.
std::string RuntimeSummary();

}  // namespace detr
