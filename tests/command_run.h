// Runs a shell command in a test and keeps what it printed, so that a failing
// assertion can show it: one helper for every test that runs a binary or tool.
#pragma once

#include <sys/wait.h>

#include <cstdio>
#include <memory>
#include <string>

namespace detr::testing {

struct CommandRun {
  int exit_code = -1;  // -1: it did not exit normally (a signal) or could not start
  std::string output;  // stdout; stderr too when the command ends in 2>&1
};

inline CommandRun RunCommand(const std::string& command) {
  CommandRun run;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(command.c_str(), "r"), pclose);
  if (!pipe) return run;
  char buffer[4096];
  while (const std::size_t n = std::fread(buffer, 1, sizeof buffer, pipe.get())) run.output.append(buffer, n);
  const int status = pclose(pipe.release());  // the deleter would drop it
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

}  // namespace detr::testing
