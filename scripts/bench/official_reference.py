#!/usr/bin/env python3
"""A model of the official API Gateway connector's design, for `make bench-cost`.

This is NOT the official Lambda (its source is not public): it is its design as
plain Python, standard library only, so that the connector's cost per call can
be compared with that design on the same machine and node. Per the Lambda's own
docstring it "forwards the original request to Wallarm node, then sends
response metadata back": per call, sequentially, on one keep-alive connection
(http.client), a request message and then a response message, with the same
headers as the connector's default raw profile.

Input: access-log lines (JSON per line, as `apigw-connector generate` writes).
Prints one line: calls, CPU seconds of this process (user+sys), wall seconds,
calls per CPU-second.
"""
import http.client
import json
import os
import sys
import time


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: official_reference.py HOST:PORT FILE", file=sys.stderr)
        return 2
    host, port = sys.argv[1].rsplit(":", 1)
    cpu0, wall0 = os.times(), time.monotonic()
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    calls = 0
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            log = json.loads(line)
            hdrs = {
                "Host": log["domainName"],
                "X-Wallarm-Request-Id": log["requestId"],
                "X-Wallarm-Forwarded-Host": log["domainName"],
                "X-Wallarm-Forwarded-For": log.get("sourceIp", "0.0.0.0"),
                "X-Wallarm-Connector-Type": "apigw-connector",
                "X-Wallarm-Connector-Version": "python-reference",
            }
            ua = log.get("userAgent", "-")
            req = dict(hdrs)
            if ua != "-":
                req["User-Agent"] = ua
            conn.request(log["httpMethod"], log["path"], headers=req)
            r = conn.getresponse()
            r.read()
            resp = dict(hdrs)
            resp["X-Wallarm-Response-Code"] = str(log["status"])
            conn.request("POST", log["path"], body=b"", headers=resp)
            r = conn.getresponse()
            r.read()
            calls += 1
    conn.close()
    cpu1 = os.times()
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    wall = time.monotonic() - wall0
    print(f"python-reference calls={calls} cpu_s={cpu:.3f} wall_s={wall:.3f} calls_per_cpu_s={calls / cpu:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
