# Cross-compile for 64-bit ARM Linux (Raspberry Pi 3/4/5 with a 64-bit OS).
#   cmake -S . -B build-a64 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/aarch64-linux-gnu.cmake
# Tests run under qemu-user through CMAKE_CROSSCOMPILING_EMULATOR (binfmt not needed).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(XE_CROSS_PREFIX aarch64-linux-gnu CACHE STRING "Cross compiler prefix")
set(XE_CROSS_SYSROOT /usr/${XE_CROSS_PREFIX} CACHE PATH "Target libraries (qemu -L)")
set(CMAKE_C_COMPILER ${XE_CROSS_PREFIX}-gcc)
set(CMAKE_CXX_COMPILER ${XE_CROSS_PREFIX}-g++)

# NEON (Advanced SIMD) is part of ARMv8-A, so the baseline needs no extra flags.
set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-aarch64;-L;${XE_CROSS_SYSROOT}")

set(CMAKE_FIND_ROOT_PATH ${XE_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
