#!/usr/bin/env bash
# Merge the parts of an hpcmap job array (pbs/array.pbs): read the JSON-lines
# records of every part, check that parts 1..K are all there exactly once and
# belong to one workload, and sum answer.value over them.
set -euo pipefail

PROG=$(basename "$0")

usage() {
    cat <<EOF
Usage: $PROG [--json] DIR|FILE...

Sums answer.value over the JSON records of an hpcmap job array, one record per
part (field "part": "I/K"). Give the parts directory pbs/array.pbs wrote,
results/<arrayjobid>.parts, or the .jsonl files themselves.

Checks that every part 1..K appears exactly once (the last record of a part
wins when a part was rerun) and that all parts ran the same workload with the
same K. The sum is exact (big integers) and meaningful for workloads whose
answers add up over splits of the items: square and primes.

Prints:
  parts: K (workload W)
  part I/K: VALUE   (one line per part)
  answer: SUM
With --json, prints one JSON object instead:
  {"workload":W,"parts":K,"values":[...],"answer":SUM}

Exit codes: 0 ok, 1 missing/duplicate/inconsistent parts or unreadable records,
2 usage error. Needs perl with JSON::PP (part of every standard perl).
EOF
}

JSON_OUT=0
FILES=()
for arg in "$@"; do
    case "$arg" in
    -h | --help) usage; exit 0 ;;
    --json) JSON_OUT=1 ;;
    -*) echo "$PROG: unknown option $arg" >&2; usage >&2; exit 2 ;;
    *)
        if [ -d "$arg" ]; then
            shopt -s nullglob
            FILES+=("$arg"/*.jsonl)
            shopt -u nullglob
        elif [ -f "$arg" ]; then
            FILES+=("$arg")
        else
            echo "$PROG: no such file or directory: $arg" >&2
            exit 1
        fi
        ;;
    esac
done
if [ "$#" -eq 0 ]; then
    usage >&2
    exit 2
fi
if [ "${#FILES[@]}" -eq 0 ]; then
    echo "$PROG: no .jsonl files found in: $*" >&2
    exit 1
fi

exec perl -MJSON::PP -MMath::BigInt -e '
use strict; use warnings;
my $json_out = shift @ARGV;
my $json = JSON::PP->new->allow_bignum;
my (%value, $k, $workload);
my $fail = sub { print STDERR "merge-parts: error: $_[0]\n"; exit 1 };
while (my $line = <>) {
    next unless $line =~ /\S/;
    my $r = eval { $json->decode($line) } or $fail->("$ARGV line $.: not JSON");
    my $part = $r->{part};
    defined $part && $part =~ m{^(\d+)/(\d+)$}
        or $fail->("$ARGV line $.: record has no part I/K (was it run with --part?)");
    my ($i, $kk) = ($1, $2);
    $k //= $kk;
    $kk == $k or $fail->("$ARGV: part $part does not match K=$k of the other parts");
    $workload //= $r->{workload};
    $r->{workload} eq $workload
        or $fail->("$ARGV: workload $r->{workload} differs from $workload");
    my $v = $r->{answer}{value};
    defined $v && !ref($v) || ref($v) =~ /^Math::Big/
        or $fail->("$ARGV: part $part: answer.value is not a number");
    $value{$i} = Math::BigInt->new("$v");
    $value{$i}->is_nan and $fail->("$ARGV: part $part: answer.value $v is not an integer");
} continue { close ARGV if eof }
defined $k or $fail->("no records in the given files (did the parts fail?)");
my @missing = grep { !exists $value{$_} } 1 .. $k;
@missing and $fail->("missing part(s) " . join(",", @missing) . " of $k");
my $sum = Math::BigInt->new(0);
$sum += $value{$_} for 1 .. $k;
if ($json_out) {
    print JSON::PP->new->canonical->allow_bignum->encode({ workload => $workload, parts => $k + 0,
        values => [ map { $value{$_} } 1 .. $k ], answer => $sum }), "\n";
} else {
    print "parts: $k (workload $workload)\n";
    print "part $_/$k: $value{$_}\n" for 1 .. $k;
    print "answer: $sum\n";
}
' "$JSON_OUT" ${FILES[@]+"${FILES[@]}"}
