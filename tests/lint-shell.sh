#!/usr/bin/env bash
# Static checks of the shell code: shellcheck on every script, and a grep for
# constructs that break the job templates on bash 4.2 (RHEL/CentOS 7, still
# common on clusters) so they do not come back. No root, no scheduler needed.
set -uo pipefail

usage() {
    cat <<'EOF'
Usage: bash tests/lint-shell.sh [--help]

1. shellcheck over pbs/*.pbs, pbs/job.sh, scripts/*.sh and tests/*.sh
   (installs shellcheck with apt when missing and running as root).
2. bash 4.2 safety of what runs on cluster nodes and login nodes (pbs/*.pbs,
   pbs/job.sh, scripts/merge-parts.sh). Flagged:
     "${a[@]}" and "${!a[@]}"   unbound under set -u when a is empty (bash < 4.4);
                                write ${a[@]+"${a[@]}"}
     ${a[-1]}, ${a[@]: -1}      negative indices (bash 4.3)
     local -n / declare -n      namerefs (4.3)      wait -n (4.3)
     ${x@Q} and other @-ops     (4.4)               mapfile -d / readarray -d (4.4)
     $EPOCHSECONDS etc. (5.0)   shopt -s inherit_errexit, local - (4.4)
Ends with 'N passed, M failed'; exits non-zero if any check failed.
EOF
}
case ${1:-} in
-h | --help) usage; exit 0 ;;
"") ;;
*) usage >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2
PASS=0
FAIL=0
ok() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$1"; }
not_ok() {
    FAIL=$((FAIL + 1))
    printf 'FAIL %s\n' "$1"
    [ -n "${2:-}" ] && printf '%s\n' "$2" | sed 's/^/     | /' | head -40
    return 0
}

# --- shellcheck -------------------------------------------------------------------
if ! command -v shellcheck >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -q shellcheck >/dev/null 2>&1 ||
        { timeout 120 apt-get update -q >/dev/null 2>&1
          DEBIAN_FRONTEND=noninteractive timeout 120 apt-get install -y -q shellcheck >/dev/null 2>&1; }
fi
SCRIPTS=(pbs/*.pbs pbs/job.sh scripts/*.sh tests/*.sh)
if ! command -v shellcheck >/dev/null 2>&1; then
    not_ok "shellcheck available" "apt-get install shellcheck failed (or not root)"
elif out=$(shellcheck -x "${SCRIPTS[@]}" 2>&1); then
    ok "shellcheck: ${#SCRIPTS[@]} scripts clean"
else
    not_ok "shellcheck ${SCRIPTS[*]}" "$out"
fi

# --- bash 4.2 ----------------------------------------------------------------------
CLUSTER_SIDE=(pbs/*.pbs pbs/job.sh scripts/merge-parts.sh)
# bash42_violations FILE: "FILE:LINE: text" for each flagged line. Comments are
# skipped; a guarded expansion ${a[@]+"${a[@]}"} is removed before matching.
bash42_violations() {
    perl -ne '
        next if /^\s*#/;
        my $l = $_;
        $l =~ s/\$\{(!?)(\w+)\[\@\]\+"\$\{\1\2\[\@\]\}"\}//g;   # the guarded form
        my @why;
        push @why, "unguarded array expansion" if $l =~ /"\$\{!?\w+\[\@\]\}"/;
        push @why, "negative array index" if $l =~ /\$\{\w+\[\s*-\d+\s*\]\}/ || $l =~ /\$\{\w+\[\@\]:\s*-\d/;
        push @why, "nameref (bash 4.3)" if $l =~ /\b(local|declare|typeset)\s+-\w*n/;
        push @why, "wait -n (bash 4.3)" if $l =~ /\bwait\s+-n\b/;
        push @why, "parameter transformation (bash 4.4)" if $l =~ /\$\{[\w\[\]\@*]+\@[QEPAaUuLK]\}/;
        push @why, "mapfile -d (bash 4.4)" if $l =~ /\b(mapfile|readarray)\s+(-\w+\s+)*-\w*d/;
        push @why, "EPOCH variables (bash 5)" if $l =~ /\$\{?EPOCH(SECONDS|REALTIME)/;
        push @why, "inherit_errexit (bash 4.4)" if $l =~ /inherit_errexit/;
        push @why, "local - (bash 4.4)" if $l =~ /\blocal\s+-\s*$/;
        print "$ARGV:$.: ", join(", ", @why), ": $_" if @why;
    } continue { close ARGV if eof' "$@"
}
if out=$(bash42_violations "${CLUSTER_SIDE[@]}") && [ -z "$out" ]; then
    ok "bash 4.2: no unguarded array expansions, negative indices or newer constructs in ${CLUSTER_SIDE[*]}"
else
    not_ok "bash 4.2 constructs in ${CLUSTER_SIDE[*]}" "$out"
fi
# The check itself must catch what it claims to (a small sample of each kind).
sample=$(mktemp)
cat >"$sample" <<'EOF'
echo "${EXTRA[@]}"
for r in "${!HOSTS[@]}"; do :; done
[ "${RPNS[-1]}" -ne 1 ]
local -n ref=x
wait -n
echo "${x@Q}"
mapfile -d '' -t a <f
echo $EPOCHSECONDS
EOF
n=$(bash42_violations "$sample" | wc -l)
# shellcheck disable=SC2016 # the sample is literal shell text
guarded=$(printf '%s\n' 'cmd ${EXTRA[@]+"${EXTRA[@]}"} ${!H[@]+"${!H[@]}"}' >"$sample" && bash42_violations "$sample" | wc -l)
rm -f "$sample"
if [ "$n" -eq 8 ] && [ "$guarded" -eq 0 ]; then
    ok "bash 4.2 check flags 8 of 8 bad samples and passes the guarded form"
else
    not_ok "bash 4.2 check self-test" "flagged $n of 8 bad samples; $guarded on the guarded form"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
