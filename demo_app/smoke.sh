#!/usr/bin/env bash
# The demo's acceptance steps, with curl, against a running demo (`make demo`).
#
#   demo_app/smoke.sh [BASE_URL]        # default http://127.0.0.1:${PORT:-8000}
#
# Run it against a freshly started demo: the search step needs a fresh 10 s window and the
# login limit allows 5 logins a minute per client. Exits non-zero at the first failure.
set -euo pipefail

BASE="${1:-http://127.0.0.1:${PORT:-8000}}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
JSON='content-type: application/json'
STEP=0

pass() { STEP=$((STEP + 1)); echo "ok $STEP - $*"; }
fail() { echo "not ok - $*" >&2; exit 1; }

# request NAME curl-args...: body in $WORK/NAME.body, headers in $WORK/NAME.headers,
# prints the status code.
request() {
    local name="$1"
    shift
    curl --silent --show-error --max-time 10 -o "$WORK/$name.body" -D "$WORK/$name.headers" \
        -w '%{http_code}' "$@"
}
# header NAME FIELD: the (last) value of FIELD in the response NAME, without CR.
header() {
    grep -i "^$2:" "$WORK/$1.headers" | tail -n 1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'
}
# metric NAME: the sum of a Prometheus counter over its labels in the last /metrics.
metric() {
    awk -v name="$1" '$1 == name || index($1, name "{") == 1 { sum += $2 } END { print sum + 0 }' \
        "$WORK/metrics.body"
}

code=$(request health "$BASE/health") || fail "the demo does not answer at $BASE"
[ "$code" = 200 ] || fail "GET /health answered $code"
request metrics "$BASE/metrics" >/dev/null
hits_before=$(metric cachemw_cache_hit_total)
limited_before=$(metric cachemw_ratelimit_limited_total)

# 1. The second GET of a product is a cache hit, with an Age. The first GET's entry is written
#    just after its body went out; a GET arriving in that instant waits for it and says
#    "collapsed" instead of "hit", so the script asks again (a few times at most).
request first -H 'accept: application/json' "$BASE/products/1" >/dev/null
for attempt in 1 2 3 4 5; do
    code=$(request second "$BASE/products/1")
    [ "$code" = 200 ] || fail "GET /products/1 answered $code"
    header second cache-status | grep -Eq '(^|;) *hit(;|$)' && break
    header second cache-status | grep -Eq '(^|;) *collapsed(;|$)' \
        || fail "GET /products/1 after the first: Cache-Status '$(header second cache-status)' has no hit"
    sleep 0.1
done
header second cache-status | grep -Eq '(^|;) *hit(;|$)' \
    || fail "GET /products/1 never became a hit: Cache-Status '$(header second cache-status)'"
[ -n "$(header second age)" ] || fail "the cached GET /products/1 has no Age"
pass "GET /products/1 again is a hit: Cache-Status: $(header second cache-status), Age: $(header second age)"

# 2. If-None-Match with the ETag is answered 304.
etag=$(header second etag)
[ -n "$etag" ] || fail "GET /products/1 has no ETag"
code=$(request conditional -H "If-None-Match: $etag" "$BASE/products/1")
[ "$code" = 304 ] || fail "If-None-Match: $etag answered $code, not 304"
pass "If-None-Match: $etag gets 304"

# 3. PUT with a stale If-Match gets 412; with the current one 200; the next GET is a miss
#    with the new data.
price_one="$((RANDOM % 500 + 1)).25"
code=$(request put_current -X PUT -H "$JSON" -H "If-Match: $etag" \
    -d "{\"price\": $price_one}" "$BASE/products/1")
[ "$code" = 200 ] || fail "PUT with the current If-Match $etag answered $code"
new_etag=$(header put_current etag)
code=$(request put_stale -X PUT -H "$JSON" -H "If-Match: $etag" \
    -d '{"price": 1.5}' "$BASE/products/1")
[ "$code" = 412 ] || fail "PUT with the stale If-Match $etag answered $code, not 412"
pass "PUT /products/1 with the stale If-Match $etag gets 412"
price_two="$((RANDOM % 500 + 501)).75"
code=$(request put_again -X PUT -H "$JSON" -H "If-Match: $new_etag" \
    -d "{\"price\": $price_two}" "$BASE/products/1")
[ "$code" = 200 ] || fail "PUT with the current If-Match $new_etag answered $code"
pass "PUT /products/1 with the current If-Match $new_etag gets 200"
code=$(request after_put "$BASE/products/1")
[ "$code" = 200 ] || fail "GET /products/1 after the PUT answered $code"
status=$(header after_put cache-status)
echo "$status" | grep -Eq '(^|;) *hit(;|$)' && fail "GET after the PUT was a hit: $status"
grep -q "\"price\":$price_two" "$WORK/after_put.body" \
    || fail "GET after the PUT has old data: $(cat "$WORK/after_put.body")"
pass "the next GET is a miss with the new price $price_two: Cache-Status: $status"

# 4. Login sets an HttpOnly; SameSite=Lax cookie.
code=$(request login -X POST -H "$JSON" -d '{"username": "smoke"}' "$BASE/login")
[ "$code" = 200 ] || fail "POST /login answered $code"
cookie_line=$(header login set-cookie)
echo "$cookie_line" | grep -qi 'httponly' || fail "login cookie is not HttpOnly: $cookie_line"
echo "$cookie_line" | grep -qi 'samesite=lax' || fail "login cookie is not SameSite=Lax: $cookie_line"
cookie=$(echo "$cookie_line" | cut -d';' -f1)
pass "login sets an HttpOnly; SameSite=Lax cookie"

# 5. /me returns the user.
code=$(request me -H "Cookie: $cookie" "$BASE/me")
[ "$code" = 200 ] || fail "GET /me with the login cookie answered $code"
grep -q '"username":"smoke"' "$WORK/me.body" || fail "GET /me: $(cat "$WORK/me.body")"
pass "/me returns the user: $(cat "$WORK/me.body")"

# 6. A forged cookie is anonymous.
forged="${cookie%%=*}=$(head -c 48 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
code=$(request forged -H "Cookie: $forged" "$BASE/me")
[ "$code" = 401 ] || fail "GET /me with a forged cookie answered $code, not 401"
pass "a forged session cookie is anonymous (401)"

# 7. Logout makes the old cookie anonymous.
code=$(request logout -X POST -H "Cookie: $cookie" "$BASE/logout")
[ "$code" = 200 ] || fail "POST /logout answered $code"
code=$(request after_logout -H "Cookie: $cookie" "$BASE/me")
[ "$code" = 401 ] || fail "GET /me with the logged-out cookie answered $code, not 401"
pass "after logout the old cookie is anonymous (401)"

# 8. The 11th search in 10 s gets 429 with Retry-After and RateLimit.
for i in $(seq 1 10); do
    code=$(request search "$BASE/api/search?q=lamp")
    [ "$code" = 200 ] || fail "search $i of 10 answered $code"
done
[ -n "$(header search ratelimit)" ] || fail "an admitted search has no RateLimit field"
code=$(request search_limited "$BASE/api/search?q=lamp")
[ "$code" = 429 ] || fail "the 11th search in 10 s answered $code, not 429"
retry_after=$(header search_limited retry-after)
ratelimit=$(header search_limited ratelimit)
[ -n "$retry_after" ] || fail "the 429 has no Retry-After"
[ -n "$ratelimit" ] || fail "the 429 has no RateLimit"
pass "the 11th search gets 429, Retry-After: $retry_after, RateLimit: $ratelimit"

# 9. /metrics shows the counts moving.
code=$(request metrics "$BASE/metrics")
[ "$code" = 200 ] || fail "GET /metrics answered $code"
hits_after=$(metric cachemw_cache_hit_total)
limited_after=$(metric cachemw_ratelimit_limited_total)
awk -v a="$hits_after" -v b="$hits_before" 'BEGIN { exit !(a > b) }' \
    || fail "cache hits did not move: $hits_before -> $hits_after"
awk -v a="$limited_after" -v b="$limited_before" 'BEGIN { exit !(a > b) }' \
    || fail "limited requests did not move: $limited_before -> $limited_after"
pass "/metrics moves: cache hits $hits_before -> $hits_after, 429s $limited_before -> $limited_after"

echo "all $STEP smoke steps passed against $BASE"
