# Runs the checkpoint converter; exits 77 (CTest: skipped) when the fixture is absent.
if(NOT EXISTS "${INPUT}")
  message("fixture ${INPUT} is absent: skipped")
  cmake_language(EXIT 77)
endif()
execute_process(COMMAND ${PYTHON} ${SCRIPT} ${INPUT} ${OUTPUT} RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "convert_checkpoint.py failed: ${result}")
endif()
