"""Turn trial's closing summary into one plain `N passed, N failed, N skipped` line.

Reads trial's text output on stdin. Trial ends with e.g.
`PASSED (skips=2, successes=40)` or `FAILED (failures=1, errors=2, successes=37)`.
"""

import re
import sys


def summarize(text: str) -> str:
    match = None
    for match in re.finditer(r"^(PASSED|FAILED) \(([^)]*)\)\s*$", text, re.M):
        pass
    if match is None:
        return "0 passed, 1 failed, 0 skipped  (trial printed no summary)"
    counts = dict((k, int(v)) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2)))
    passed = counts.get("successes", 0) + counts.get("expectedFailures", 0)
    failed = counts.get("failures", 0) + counts.get("errors", 0) + counts.get("unexpectedSuccesses", 0)
    return f"{passed} passed, {failed} failed, {counts.get('skips', 0)} skipped"


if __name__ == "__main__":
    print(summarize(sys.stdin.read()))
