# coco_require(<find_package arguments> DEBIAN <packages>): find_package, and where
# the package is missing stop with a message that names the Debian packages to
# install, so a user on a bare system learns what to do, not only what failed.
macro(coco_require name)
  cmake_parse_arguments(_coco_req "" "" "DEBIAN" ${ARGN})
  find_package(${name} ${_coco_req_UNPARSED_ARGUMENTS})
  if(NOT ${name}_FOUND)
    message(FATAL_ERROR "coco needs ${name}, which was not found. On Debian 12: apt-get install "
                        "${_coco_req_DEBIAN} (tools/setup.sh installs every package coco needs)")
  endif()
endmacro()
