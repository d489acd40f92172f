# Cross-compiling kvpack for 64-bit Arm (NEON) with Debian's cross toolchain: the `aarch64`
# preset uses this, .ci/run's aarch64 stage builds the base, format and attention tests with it
# and runs them under qemu-user (scripts/install-cross-deps.sh installs g++-aarch64-linux-gnu,
# qemu-user and the arm64 -dev packages through dpkg multiarch).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Multiarch: the arm64 packages' libraries, CMake configs and pkg-config files sit under
# /usr/lib/aarch64-linux-gnu; headers are shared in /usr/include.
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
# Test binaries (and gtest_discover_tests' listing) run under qemu-user with the arm64 runtime
# multiarch installed (/lib/ld-linux-aarch64.so.1, libc6:arm64 and the -dev packages' libraries).
# Not `-L /usr/aarch64-linux-gnu`: that takes the loader from the cross package but libc from
# multiarch when their versions differ (2.36-8cross1 vs 2.36-9+deb12u14), and the mismatched
# pair hangs in the first pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
# The cross compiler is not behind /usr/local/bin's ccache links as g++ and clang++ are: launch it
# through ccache where there is one, so a rebuild of the stage costs seconds.
find_program(KVPACK_CCACHE ccache)
if(KVPACK_CCACHE)
  set(CMAKE_C_COMPILER_LAUNCHER ${KVPACK_CCACHE})
  set(CMAKE_CXX_COMPILER_LAUNCHER ${KVPACK_CCACHE})
endif()
