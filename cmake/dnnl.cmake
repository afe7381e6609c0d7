# oneDNN for the CPU convolutions (COCO_WITH_DNNL: AUTO, ON, OFF).
#
# The probe project in cmake/dnnl_probe finds and links oneDNN in a configure and
# build of its own. AUTO uses oneDNN only when that works and otherwise says in one line why the
# convolutions fall back to im2col + OpenBLAS; ON stops with the reason and the Debian
# package that is missing. Sets COCO_DNNL to 1 or 0.
set(COCO_DNNL 0)
if(COCO_WITH_DNNL STREQUAL "OFF")
  return()
endif()

# A separate cmake process: a fatal error inside the package config ends only the probe.
set(_dnnl_probe_dir ${CMAKE_BINARY_DIR}/dnnl_probe)
file(REMOVE_RECURSE ${_dnnl_probe_dir})
execute_process(
  COMMAND ${CMAKE_COMMAND} -S ${CMAKE_CURRENT_LIST_DIR}/dnnl_probe -B ${_dnnl_probe_dir}
          -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER} -DCMAKE_PREFIX_PATH=${CMAKE_PREFIX_PATH}
          -Ddnnl_DIR=${dnnl_DIR}
  RESULT_VARIABLE _dnnl_probe_rc OUTPUT_VARIABLE _dnnl_probe_log ERROR_VARIABLE _dnnl_probe_log)
if(_dnnl_probe_rc EQUAL 0)
  execute_process(COMMAND ${CMAKE_COMMAND} --build ${_dnnl_probe_dir}
                  RESULT_VARIABLE _dnnl_probe_rc OUTPUT_VARIABLE _dnnl_probe_log ERROR_VARIABLE _dnnl_probe_log)
endif()
if(_dnnl_probe_rc EQUAL 0)
  find_package(dnnl CONFIG REQUIRED)
  set(COCO_DNNL 1)
  return()
endif()

# The reason: the first "Could NOT find ..." line, else the first error line.
string(REGEX MATCH "Could NOT find [^\n]*" _dnnl_reason "${_dnnl_probe_log}")
if(NOT _dnnl_reason)
  string(REGEX MATCH "(Could not find a package configuration file provided by \"dnnl\")|(error[^\n]*)"
         _dnnl_reason "${_dnnl_probe_log}")
endif()
if(NOT _dnnl_reason)
  set(_dnnl_reason "the probe in ${_dnnl_probe_dir} failed")
endif()
if(_dnnl_reason MATCHES "OpenCL")
  set(_dnnl_package "ocl-icd-opencl-dev (oneDNN's package config needs OpenCL)")
else()
  set(_dnnl_package "libdnnl-dev")
endif()
if(COCO_WITH_DNNL STREQUAL "ON")
  message(FATAL_ERROR "COCO_WITH_DNNL=ON but oneDNN cannot be used: ${_dnnl_reason}. Debian: apt-get install ${_dnnl_package}")
endif()
message(STATUS "coco: oneDNN not usable (${_dnnl_reason}; Debian: ${_dnnl_package}): CPU convolutions use im2col + OpenBLAS")
