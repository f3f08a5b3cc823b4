# Cross-compile for 32-bit ARM Linux, hard-float (Raspberry Pi 2/3/4 with
# 32-bit Raspberry Pi OS).
#   cmake -S . -B build-a32 -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/armv7-linux-gnueabihf.cmake
# Tests run under qemu-user through CMAKE_CROSSCOMPILING_EMULATOR (binfmt not needed).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR armv7l)

set(XE_CROSS_PREFIX arm-linux-gnueabihf CACHE STRING "Cross compiler prefix")
set(XE_CROSS_SYSROOT /usr/${XE_CROSS_PREFIX} CACHE PATH "Target libraries (qemu -L)")
set(CMAKE_C_COMPILER ${XE_CROSS_PREFIX}-gcc)
set(CMAKE_CXX_COMPILER ${XE_CROSS_PREFIX}-g++)

# Baseline: Debian armhf's ARMv7-A + VFPv3-D16, hard-float ABI, so the
# reference kernels run on any ARMv7 board. runtime_c/CMakeLists.txt adds
# -mfpu=neon-vfpv4 to the NEON kernel file only, and the dispatcher selects it
# when the CPU reports NEON and VFPv4 (every Raspberry Pi from the Pi 2 on).
set(CMAKE_C_FLAGS_INIT "-march=armv7-a -mfpu=vfpv3-d16 -mfloat-abi=hard")
set(CMAKE_CXX_FLAGS_INIT "-march=armv7-a -mfpu=vfpv3-d16 -mfloat-abi=hard")

set(CMAKE_CROSSCOMPILING_EMULATOR "qemu-arm;-L;${XE_CROSS_SYSROOT}")

set(CMAKE_FIND_ROOT_PATH ${XE_CROSS_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
