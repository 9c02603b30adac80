# Consumer test, run by ctest as a CMake script: installs the built package into a fresh prefix, builds examples/cpp
# against it with find_package(safestructures) as a user's project would, then runs the two examples on each other's
# output.
foreach(var BUILD_DIR SOURCE_DIR WORK_DIR GENERATOR CXX_COMPILER BUILD_TYPE)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "consumer_test.cmake needs -D${var}=...")
  endif()
endforeach()

function(run output_var)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE status OUTPUT_VARIABLE output ERROR_VARIABLE output)
  if(NOT status EQUAL 0)
    string(REPLACE ";" " " command "${ARGN}")
    message(FATAL_ERROR "failed (${status}): ${command}\n${output}")
  endif()
  set(${output_var} "${output}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
run(out ${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${prefix}")
foreach(installed include/safestructures/file.hpp include/safestructures/value.hpp lib/libsafestructures_core.a
                  lib/cmake/safestructures/safestructuresConfig.cmake lib/cmake/safestructures/safestructuresConfigVersion.cmake)
  if(NOT EXISTS "${prefix}/${installed}")
    message(FATAL_ERROR "the install lacks ${installed}")
  endif()
endforeach()

# -Wno-restrict: GCC 12 warns wrongly about "text" + std::string (GCC bug 105329), which the examples use freely.
run(out ${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/cpp" -B "${WORK_DIR}/build" -G "${GENERATOR}"
    "-DCMAKE_PREFIX_PATH=${prefix}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
    "-DCMAKE_CXX_FLAGS=-Wall -Wextra -Werror -Wno-restrict ${CXX_FLAGS}")
# The package must come from the prefix, not from the build tree or the system.
file(STRINGS "${WORK_DIR}/build/CMakeCache.txt" found REGEX "^safestructures_DIR")
if(NOT found MATCHES "${prefix}/lib/cmake/safestructures")
  message(FATAL_ERROR "find_package found the package elsewhere: ${found}")
endif()
run(out ${CMAKE_COMMAND} --build "${WORK_DIR}/build")

run(out "${WORK_DIR}/build/save_tree" "${WORK_DIR}/tree.safetensors")
run(tree "${WORK_DIR}/build/print_tree" "${WORK_DIR}/tree.safetensors")
message(STATUS "print_tree output:\n${tree}")
foreach(expected
    "metadata written_by = save_tree"
    "\"weight\": tensor F32 [2, 3] model.layers.0.weight: 0.5 -1 2 4 8 16"
    "\"bias\": tensor I64 [3] model.layers.0.bias: 1 2 3"
    "\"tied\": ref #1 (tensor)"
    "\"lr\": float 0.001"
    "\"loss\": float nan"
    "\"name\": str \"run-1\""
    "\"betas\": tuple of 2"
    "\"big\": bigint 0x100000000000000000000"
    "key: int 7")
  string(FIND "${tree}" "${expected}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "print_tree's output lacks: ${expected}")
  endif()
endforeach()
