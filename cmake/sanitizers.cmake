# Sanitizer and fuzzing builds.
#
#   -DCOCO_SANITIZE=address,undefined   every target (library, tools, tests) is built
#                                       with these sanitizers; any report fails the
#                                       program (UBSan does not recover), so ctest
#                                       fails on it. GCC or clang. CPU only.
#   -DCOCO_FUZZ=ON                      clang: also builds tests/fuzz's libFuzzer
#                                       targets; everything gets address,undefined and
#                                       libFuzzer's coverage instrumentation.
#
# Runtime defaults (leak suppressions for third-party libraries, halt on the first
# UBSan report) are compiled into every executable from cmake/sanitizer_defaults.cpp,
# so ctest, the gtest discovery step and mpiexec-launched ranks need no environment.
if(COCO_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "COCO_FUZZ=ON needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++ "
                        "(Debian: clang, libclang-rt-dev)")
  endif()
  if(NOT COCO_SANITIZE)
    set(COCO_SANITIZE "address,undefined" CACHE STRING "" FORCE)
  endif()
  # Coverage feedback for libFuzzer in the engine itself, not only in the target file.
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link>)
endif()

if(COCO_SANITIZE)
  if(COCO_CUDA)
    message(FATAL_ERROR "COCO_SANITIZE=${COCO_SANITIZE} is for CPU builds: add -DCOCO_WITH_CUDA=OFF")
  endif()
  message(STATUS "coco: sanitizers ${COCO_SANITIZE}")
  set(_coco_san -fsanitize=${COCO_SANITIZE} -fno-sanitize-recover=all -fno-omit-frame-pointer)
  if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    list(APPEND _coco_san -gline-tables-only)
  else()
    list(APPEND _coco_san -g1)
  endif()
  foreach(f ${_coco_san})
    add_compile_options($<$<COMPILE_LANGUAGE:CXX>:${f}>)
  endforeach()
  add_link_options(-fsanitize=${COCO_SANITIZE})
endif()
