# Cross-compiling kvpack for 64-bit Arm (NEON) with Debian's cross toolchain: the `aarch64`
# preset uses this, .ci/run's aarch64 stage builds the format, attention and model tests with it
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
# Test binaries (and gtest_discover_tests' listing) run under qemu-user.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
