# prebuilt-env.sh PACK_DIR — sourced on a GPU machine to run a pack of scripts/gpu-pack.sh:
# unpacks its libraries, points LD_LIBRARY_PATH at them and at the machine's own cuBLASLt
# and NCCL (the CUDA toolkit's, or the ones Python's nvidia-* packages carry), and makes
# the source path compiled into the tests lead to this checkout.
prebuilt_env() {
    local pack
    pack=$(realpath "$1") || return 1
    local root
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    local libs=/tmp/mnrl-prebuilt-libs
    rm -rf "$libs" && mkdir -p "$libs" && tar -C "$libs" -xJf "$pack/libs.tar.xz" || return 1
    local dirs=$libs name found
    for name in libcublasLt.so.13 libnccl.so.2; do
        found=$(ldconfig -p | awk -v n="$name" '$1 == n {print $NF; exit}')
        [ -n "$found" ] || found=$(find /usr/local/cuda*/ /usr/local/lib /usr/lib /opt -name "$name" 2>/dev/null | head -1)
        if [ -z "$found" ]; then
            echo "prebuilt-env.sh: $name not found on this machine" >&2
            return 1
        fi
        dirs="$dirs:$(dirname "$found")"
    done
    export LD_LIBRARY_PATH="$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    local source_dir
    source_dir=$(cat "$pack/source_dir")
    if [ "$source_dir" != "$root" ] && [ ! -e "$source_dir" ]; then
        mkdir -p "$(dirname "$source_dir")" && ln -s "$root" "$source_dir" || return 1
    fi
    echo "prebuilt: $pack (commit $(cat "$pack/commit")), LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
}
