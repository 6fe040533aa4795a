#!/usr/bin/env bash
# Scenario decision-latency, after the others: every decision this combo's plugin processes
# logged (all their logs) took at most the decision deadline (1 s) plus E2E_DEADLINE_SLACK_MS
# (default 200). That is the design's promise: the request path never waits past its deadline,
# whatever the registry does, so containerd's 2 s timeout is never reached. Work the deadline
# cannot cut short (synchronous work in the request path) shows up here.

scenario_decision_latency() {
  local limit=$((1000 + ${E2E_DEADLINE_SLACK_MS:-200})) out
  out=$(cat "$PD"/plugin.log* 2>/dev/null | "$IC_PYTHON" -c '
import json, sys
limit = int(sys.argv[1])
d = []
for line in sys.stdin:
    try:
        f = json.loads(line).get("fields", {})
    except ValueError:
        continue
    if f.get("message") == "decision":
        d.append(f)
slow = [f for f in d if f["latency_us"] > limit * 1000]
top = max(d, key=lambda f: f["latency_us"]) if d else None
print("%d decisions; slowest %s ms (%s %s, %s)" % (len(d), top["latency_us"] // 1000 if top else "-",
      top and top["pod"], top and top["container"], top and top["answer"]))
for f in slow:
    print("SLOW %s ms: %s %s (%s, %s)" % (f["latency_us"] // 1000, f["pod"], f["container"], f["case"], f["answer"]))
' "$limit")
  say "${out%%$'\n'*}"
  if grep -q '^SLOW' <<<"$out"; then
    fail "decisions past the deadline (limit $limit ms): $(grep '^SLOW' <<<"$out" | tr '\n' ';')"
  fi
}
