# The library version lives once, in runtime_c/include/xnor_edge.h
# (XE_VERSION_MAJOR/MINOR/PATCH); CMake's project() and scikit-build-core's regex
# metadata provider (pyproject.toml) both read it from there.
#
#   get_xnor_edge_version(<header> <out-var>)  sets <out-var> to "MAJOR.MINOR.PATCH".
function(get_xnor_edge_version header out_var)
  file(READ "${header}" text)
  foreach(part MAJOR MINOR PATCH)
    if(NOT text MATCHES "#define[ \t]+XE_VERSION_${part}[ \t]+([0-9]+)")
      message(FATAL_ERROR "${header}: no '#define XE_VERSION_${part} <number>'")
    endif()
    set(${part} ${CMAKE_MATCH_1})
  endforeach()
  set(${out_var} "${MAJOR}.${MINOR}.${PATCH}" PARENT_SCOPE)
endfunction()
