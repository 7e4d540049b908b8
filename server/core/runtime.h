// Process-wide LibTorch settings for inference.
#pragma once

#include <exception>
#include <string>

namespace detr {

/// Sets LibTorch's intra-op threads (0 = every core). Debian's LibTorch
/// starts with one, which leaves the other cores idle.
void ConfigureThreads(int intra_op_threads);

/// The message of an exception for people: LibTorch's c10::Error without
/// its C++ backtrace, anything else as what() says.
std::string ErrorMessage(const std::exception& error);

/// One line for logs: LibTorch version, threads, and the BLAS/oneDNN build.
std::string RuntimeSummary();

}  // namespace detr
