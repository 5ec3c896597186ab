# snnc_add_model(<target> MODEL <x.onnx> [CALIB <c.npz>] [NAME <c-name>] [OPTIONS <flag>...])
#
# Compiles an ONNX model with snnc's C backend at build time and adds the generated C as
# a static library <target> (its header folder is a PUBLIC include directory). snnc runs
# again only when the model, the calibration data or the config file change (a depfile
# names them); the outputs land in ${CMAKE_CURRENT_BINARY_DIR}/<target>.snn/. Generated
# files whose content did not change keep their time stamps, so only what changed is
# recompiled.
#
#   list(APPEND CMAKE_MODULE_PATH "<output of: snnc --cmake-dir>")
#   include(snnc)
#   snnc_add_model(mnist MODEL ${CMAKE_SOURCE_DIR}/mnist.onnx
#                  CALIB ${CMAKE_SOURCE_DIR}/calib.npz OPTIONS --arith fixed)
#   target_link_libraries(app PRIVATE mnist)
#
# SNNC_EXECUTABLE (cache variable) is the snnc program to run (default: found on PATH).
cmake_minimum_required(VERSION 3.20)

find_program(SNNC_EXECUTABLE snnc REQUIRED)

function(snnc_add_model target)
  cmake_parse_arguments(ARG "" "MODEL;CALIB;NAME" "OPTIONS" ${ARGN})
  if(NOT ARG_MODEL)
    message(FATAL_ERROR "snnc_add_model(${target}): MODEL is required")
  endif()
  if(NOT ARG_NAME)
    set(ARG_NAME ${target})
  endif()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/${target}.snn)
  set(calib)
  if(ARG_CALIB)
    set(calib --calib ${ARG_CALIB})
  endif()
  set(sources ${out}/c/${ARG_NAME}.c ${out}/c/${ARG_NAME}_weights.c)
  # manifest.json is the stamp (rewritten by every run); the C files are byproducts whose
  # time stamps snnc keeps when their content does not change, so a rerun of snnc that
  # changes nothing recompiles nothing (Ninja: restat; Make: the objects' own depfiles)
  add_custom_command(
    OUTPUT ${out}/manifest.json
    BYPRODUCTS ${sources} ${out}/c/${ARG_NAME}.h
    COMMAND ${SNNC_EXECUTABLE} ${ARG_MODEL} -o ${out} ${calib} --backend c
            --c-name ${ARG_NAME} --depfile ${out}.d ${ARG_OPTIONS}
    DEPENDS ${ARG_MODEL} ${ARG_CALIB}
    DEPFILE ${out}.d
    COMMENT "snnc ${ARG_MODEL} -> ${out}"
    VERBATIM)
  add_custom_target(${target}_snnc DEPENDS ${out}/manifest.json)
  add_library(${target} STATIC ${sources})
  add_dependencies(${target} ${target}_snnc)
  target_include_directories(${target} PUBLIC ${out}/c)
endfunction()
