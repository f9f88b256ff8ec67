# shellcheck shell=bash
# Shared by scripts/run.sh and scripts/test.sh (sourced, not run): installs
# what a fresh Debian machine lacks, builds hpcmap, and sets what OpenMPI
# needs. Nothing here is needed on a cluster where MPI and Rust exist.

HPCMAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
HPCMAP_BIN=$HPCMAP_ROOT/target/release/hpcmap
export HPCMAP_ROOT HPCMAP_BIN

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Debian packages needed to build against and run OpenMPI (rsmpi's bindgen
# needs libclang), plus the commands given as arguments (each the name of its
# Debian package too: tmux for the tests, parallel for the benchmarks).
ensure_packages() {
    local missing=() extra
    for extra in "$@"; do
        command -v "$extra" >/dev/null 2>&1 || missing+=("$extra")
    done
    command -v mpirun >/dev/null 2>&1 || missing+=(openmpi-bin)
    command -v mpicc >/dev/null 2>&1 || missing+=(libopenmpi-dev)
    command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
    command -v clang >/dev/null 2>&1 || missing+=(clang)
    compgen -G '/usr/lib/llvm-*/lib/libclang*.so*' >/dev/null || missing+=(libclang-dev)
    # The scripts read JSON records with python3 (bench, compare-nodes) and
    # perl's core JSON::PP (merge-parts).
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    perl -MJSON::PP -e1 >/dev/null 2>&1 || missing+=(perl)
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        die "missing ${missing[*]}: install them (apt-get install ${missing[*]}) or run as root"
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The toolchain hpcmap needs (Cargo.toml's rust-version).
RUST_MIN=1.89

ensure_rust() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo not found: install Rust $RUST_MIN or newer (https://rustup.rs: curl https://sh.rustup.rs -sSf | sh)"
    local have
    have=$(rustc --version 2>/dev/null | awk '{print $2}')
    if [ "$(printf '%s\n%s\n' "$RUST_MIN" "$have" | sort -V | head -1)" != "$RUST_MIN" ]; then
        die "rustc $have is older than the $RUST_MIN hpcmap needs: run 'rustup update stable' (or install from https://rustup.rs)"
    fi
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
