#!/usr/bin/env bash
# Writes workloads PREFIX-0, PREFIX-1, ... one after another, each to the next server of
# the list, until SECONDS have passed, and records in OUT the name of every write that was
# acknowledged (HTTP 200). Used to check that no acknowledged write is lost.
#   writer.sh BASE "1 2 3" PREFIX OUT SECONDS
base=$1 ids=($2) prefix=$3 out=$4 secs=$5
: >"$out"
end=$((SECONDS + secs))
i=0
while [ "$SECONDS" -lt "$end" ]; do
    id=${ids[$((i % ${#ids[@]}))]}
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
        -H 'Content-Type: application/json' \
        -d "{\"name\":\"$prefix-$i\",\"image\":\"busybox\"}" \
        "http://127.0.0.1:$((base + 10 * id))/v1/apply")
    [ "$code" = 200 ] && echo "$prefix-$i" >>"$out"
    i=$((i + 1))
done
