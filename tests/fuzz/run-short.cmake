# run-short.cmake — one bounded fuzzing run for ctest (tests/fuzz/CMakeLists.txt):
#   cmake -DFUZZER=<binary> -DCORPUS=<seed dir> -DWORK=<scratch dir>
#         "-DARGS=<libFuzzer flags, space-separated>"
#         -P run-short.cmake
# Fuzzes a fresh copy of the seed corpus in WORK; a crash, leak, timeout or out-of-memory
# fails the test and names the saved input (WORK/artifacts/), which becomes a
# tests/fuzz/regressions/<target>-<name> file once understood.
foreach(var FUZZER CORPUS WORK ARGS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run-short.cmake: ${var} is not set")
  endif()
endforeach()

file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/corpus ${WORK}/artifacts)
file(GLOB seeds ${CORPUS}/*)
if(seeds)
  file(COPY ${seeds} DESTINATION ${WORK}/corpus)
endif()

separate_arguments(args UNIX_COMMAND "${ARGS}")
execute_process(COMMAND ${FUZZER} ${args} -print_final_stats=1
                        -artifact_prefix=${WORK}/artifacts/ ${WORK}/corpus
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  file(GLOB found ${WORK}/artifacts/*)
  message(FATAL_ERROR "${FUZZER} exited with ${rc}; input(s) saved: ${found}")
endif()
