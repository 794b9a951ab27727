#!/usr/bin/env bash
# dockerfile.sh — the Dockerfile, checked without Docker (issue 8 item 5; Docker cannot run
# here): every file or folder it COPYs from the build context exists; every package of its
# build stage is spelled as in scripts/install-deps.sh (the README's install step); every
# runtime package is the runtime library of one of those packages (same name stem: libfoo4
# or libfoo0-bar for libfoo-dev / libfoo-bar-dev); two stages, the last one running as a
# non-root user with the entry point mnrl_cuda. A check of this script's own parser runs
# first on a broken Dockerfile, so a parser that finds nothing cannot pass.
. "$(dirname "$0")/../cli_lib.sh"

# copy_sources FILE: the build-context sources of FILE's COPY lines (not --from=stage).
copy_sources() {
    awk '$1 == "COPY" && $2 !~ /^--from=/ { for (i = 2; i < NF; i++) print $i }' "$1"
}

# stage_packages FILE N: the apt-get install packages of stage N (1-based), one per line.
stage_packages() {
    awk -v want="$2" '
        $1 == "FROM" { stage++ }
        stage == want && /apt-get install/ { on = 1 }
        on { for (i = 1; i <= NF; i++) if ($i ~ /^[a-z][a-z0-9.+-]+$/ && $i != "install" && $i != "apt-get" &&
                                            $i != "rm" && $i != "useradd" && $i != "mnrl") print $i
             if ($0 !~ /\\$/) on = 0 }' "$1" | grep -v -E '^(update|noninteractive|-.*)$' | sort -u
}

# install_deps_packages: the packages array of scripts/install-deps.sh.
install_deps_packages() {
    sed -n '/^packages=(/,/)/p' scripts/install-deps.sh | sed 's/#.*//; s/packages=(//; s/)//' |
        tr ' ' '\n' | grep -v '^$' | sort -u
}

# stem PACKAGE: the library name without soname digits, -dev or -bin (libutf8proc3 ->
# libutf8proc, libopenblas0-openmp -> libopenblas-openmp, zlib1g-dev -> zlib).
stem() { echo "$1" | sed -E 's/-dev$//; s/1g$//; s/[0-9]+(-|$)/\1/; s/-bin$//'; }

# check_dockerfile FILE: runs every check on FILE.
check_dockerfile() {
    local file=$1 src pkg
    local sources
    sources=$(copy_sources "$file")
    checks=$((checks + 1))
    [ -n "$sources" ] || fail "$file: no COPY sources found"
    for src in $sources; do
        checks=$((checks + 1))
        [ -e "$src" ] || fail "$file: COPY $src: no such file or folder in the repository"
    done
    local wanted
    wanted=$(install_deps_packages)
    checks=$((checks + 1))
    [ -n "$(stage_packages "$file" 1)" ] || fail "$file: no packages found in the build stage"
    for pkg in $(stage_packages "$file" 1); do
        checks=$((checks + 1))
        grep -qx -- "$pkg" <<<"$wanted" || fail "$file: build package $pkg is not in scripts/install-deps.sh"
    done
    local stems=""
    for pkg in $wanted; do stems="$stems $(stem "$pkg")"; done
    for pkg in $(stage_packages "$file" 2); do
        checks=$((checks + 1))
        grep -qw -- "$(stem "$pkg")" <<<"$stems" ||
            fail "$file: runtime package $pkg is the library of no package in scripts/install-deps.sh"
    done
    checks=$((checks + 1))
    [ "$(grep -c '^FROM ' "$file")" = 2 ] || fail "$file: expected two stages (build, runtime)"
    checks=$((checks + 1))
    grep -q '^ENTRYPOINT \["mnrl_cuda"\]' "$file" || fail "$file: the entry point is not mnrl_cuda"
    checks=$((checks + 1))
    local user
    user=$(awk '$1 == "USER" { u = $2 } END { print u }' "$file")
    [ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || fail "$file: the image runs as root"
}

# The checks must catch a broken Dockerfile: a missing source, a misspelled package, root.
sed -e 's#^COPY src src#COPY srcx src#' -e 's/libutf8proc-dev/libutf8proc-devel/' -e '/^USER /d' \
    Dockerfile >"$TMP/Dockerfile.broken"
before=$failures
check_dockerfile "$TMP/Dockerfile.broken" 2>"$TMP/broken.err"
checks=$((checks + 1))
if [ $((failures - before)) -ne 3 ]; then
    fail "the broken Dockerfile gave $((failures - before)) failures, expected 3:"
    sed 's/^/  | /' "$TMP/broken.err" >&2
else
    failures=$before
fi
for what in "COPY srcx" "libutf8proc-devel" "runs as root"; do contains "$TMP/broken.err" "$what"; done

check_dockerfile Dockerfile
finish
