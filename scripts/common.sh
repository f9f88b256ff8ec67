# shellcheck shell=bash
# Shared by scripts/run.sh and scripts/test.sh (sourced, not run): installs
# what a fresh Debian machine lacks, builds hpcmap, and sets what OpenMPI
# needs. Nothing here is needed on a cluster where MPI and Rust exist.

HPCMAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HPCMAP_BIN=$HPCMAP_ROOT/target/release/hpcmap
export HPCMAP_ROOT HPCMAP_BIN

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages needed to build against and run OpenMPI (rsmpi's bindgen needs libclang).
ensure_packages() {
    local missing=()
    command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
    command -v mpicc >/dev/null 2>&1 || missing+=(libopenmpi-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null || missing+=(libclang-dev)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

ensure_rust() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs)"
}

# OpenMPI refuses root without these; oversubscription lets tests use more ranks than cores.
mpi_env() {
    if [ "$(id -u)" -eq 0 ]; then
        export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    export OMPI_MCA_rmaps_base_oversubscribe=1
}

build_release() {
    say "building (release)"
    (cd "$HPCMAP_ROOT" && cargo build --release --bins --examples --quiet)
}
