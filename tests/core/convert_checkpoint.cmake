# Runs the checkpoint converter. When the fixture is absent it says so, which
# CTest reports as skipped (SKIP_REGULAR_EXPRESSION; cmake_language(EXIT) needs
# CMake 3.29, Debian 12 has 3.25).
if(NOT EXISTS "${INPUT}")
  message("fixture ${INPUT} is absent: skipped")
  return()
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${INPUT} ${OUTPUT} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "convert_checkpoint.py failed: ${result}")
endif()
