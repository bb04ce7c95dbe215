# Cross-building weft for 64-bit Windows with Debian's mingw-w64 (gcc-mingw-w64-x86-64):
#   cmake -S . -B build/windows/weft -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw64.cmake
# scripts/windows.sh uses it, for cmocka and for weft. Tests run under Wine when it is
# installed (CMAKE_CROSSCOMPILING_EMULATOR), so ctest runs the .exe files as they are.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(WEFT_MINGW_TRIPLE x86_64-w64-mingw32 CACHE STRING "The mingw-w64 target triple")
set(CMAKE_C_COMPILER ${WEFT_MINGW_TRIPLE}-gcc)
set(CMAKE_RC_COMPILER ${WEFT_MINGW_TRIPLE}-windres)

# Libraries and headers come from the mingw-w64 tree and from what is handed in
# (CMAKE_PREFIX_PATH, WEFT_CMOCKA_ROOT); programs (pkg-config, wine) from the build machine.
list(APPEND CMAKE_FIND_ROOT_PATH /usr/${WEFT_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

find_program(WEFT_WINE wine)
if(WEFT_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${WEFT_WINE})
endif()
