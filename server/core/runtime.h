// Process-wide LibTorch settings for inference.
#pragma once

#include <exception>
#include <string>

namespace detr {

/// Sets LibTorch's intra-op threads (0 = every core). Debian's LibTorch
/// starts with one, which leaves the other cores idle.
void ConfigureThreads(int intra_op_threads);

/// Ends the calling thread's team of OpenMP worker threads (they start again
/// with its next parallel region). Why: libgomp lets idle workers spin, which
/// makes the next parallel region start at once, only while it manages no
/// more threads than there are cores; every thread that ever ran a parallel
/// region keeps a team. A server whose main thread loaded the models and whose
/// model workers each keep a team exceeds the cores, so every worker sleeps
/// after each parallel region and is woken again: measured here, a forward
/// pass on a second thread took 131 ms instead of 119 ms, with 300 context
/// switches per pass instead of 6. Call it on a thread that is done with
/// LibTorch for a while. No-op when no OpenMP runtime is loaded.
void ReleaseIntraOpThreads();

/// The message of an exception for people: LibTorch's c10::Error without
/// its C++ backtrace, anything else as what() says.
std::string ErrorMessage(const std::exception& error);

/// One line for logs: LibTorch version, threads, the BLAS/oneDNN build, and
/// which optimization attention kernel this CPU runs.
std::string RuntimeSummary();

}  // namespace detr
