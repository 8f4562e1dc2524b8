"""Verifies every DKIM signature of the messages given, independently of
Muster: dkimpy (RSA and, with PyNaCl, Ed25519), asking the test's DNS
server for the keys.

usage: verify.py RESOLVER_IP:PORT MESSAGE_FILE...
prints one JSON line per message: [{"d": .., "s": .., "a": .., "ok": ..}]
"""

import json
import sys

import dkim
import dns.resolver


def main() -> None:
    host, port = sys.argv[1].rsplit(":", 1)
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)

    def dnsfunc(name, timeout=5):
        name = name.decode() if isinstance(name, bytes) else name
        try:
            answer = resolver.resolve(name, "TXT", lifetime=timeout)
        except Exception:
            return None
        for record in answer:
            return b"".join(record.strings)
        return None

    for path in sys.argv[2:]:
        with open(path, "rb") as f:
            message = f.read()
        d = dkim.DKIM(message)
        results = []
        signatures = [
            value
            for (name, value) in d.headers
            if name.lower() == b"dkim-signature"
        ]
        for index in range(len(signatures)):
            tags = dkim.util.parse_tag_value(
                b"".join(signatures[index].split())
            )
            ok = d.verify(idx=index, dnsfunc=dnsfunc)
            results.append(
                {
                    "d": tags.get(b"d", b"").decode(),
                    "s": tags.get(b"s", b"").decode(),
                    "a": tags.get(b"a", b"").decode(),
                    "ok": bool(ok),
                }
            )
        print(json.dumps(results))


if __name__ == "__main__":
    main()
