"""Reads one chat stream as Python users do: requests' iter_lines(decode_unicode=True) or httpx's
iter_lines(), json.loads on every data line, no guard. Prints the chunks as JSON lines."""
import json
import sys

client, url, token, message = sys.argv[1:5]
headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
body = {"message": message}

def lines():
    if client == "requests":
        import requests
        with requests.post(url, json=body, headers=headers, stream=True, timeout=30) as r:
            r.raise_for_status()
            yield from r.iter_lines(decode_unicode=True)
    else:
        import httpx
        with httpx.stream("POST", url, json=body, headers=headers, timeout=30) as r:
            r.raise_for_status()
            yield from r.iter_lines()

for line in lines():
    if line.startswith("data:"):
        print(json.dumps(json.loads(line[5:].strip())), flush=True)
