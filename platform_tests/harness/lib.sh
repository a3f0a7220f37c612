# Shell helpers shared by the harness's setup scripts (setup.sh, peers-setup.sh); sourced, not
# run. Each script sets SAY_AS (the prefix of its messages) before sourcing this file.
say() { echo "${SAY_AS:-harness}: $*" >&2; }
die() { say "FATAL: $*"; exit 1; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1fs", b - a }'; }
as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else
        command -v sudo >/dev/null || die "not root and no sudo for: $*"
        sudo "$@"
    fi
}
