"""redis-py (Debian's python3-redis) against weft-redis over TLS.

Run by tests/test_net_tls_redis.c, which starts weft-redis with certificates made at test
time and checks this script's exit status and its last line. Every check raises on a wrong
answer; the script prints "redis-py tls: all checks passed" only when all of them held.

  redis_py_tls.py --port P --ca CA [--cert C --key K] [--plain-port Q]
                  [--refused-without-cert] [--untrusted-cert C --untrusted-key K]

--cert/--key: the client certificate to present (mutual TLS).
--plain-port: weft-redis's plain port, which must see the keys set over TLS.
--refused-without-cert: also check that a client without a certificate is refused.
--untrusted-cert/--untrusted-key: also check that a certificate from another CA is refused.
"""

import argparse
import os
import sys

try:
    import ssl

    import redis
except ImportError as e:
    print(
        "redis-py is not available to %s (%s): install Debian's python3-redis "
        "(scripts/test.sh does)" % (sys.executable, e)
    )
    sys.exit(2)


def check(what, got, want):
    if got != want:
        raise AssertionError("%s: got %r, want %r" % (what, got, want))
    print("ok  %s" % what)


def client(args, port, cert=None, key=None):
    kw = dict(
        host="127.0.0.1",
        port=port,
        ssl=True,
        ssl_ca_certs=args.ca,
        ssl_cert_reqs="required",
        ssl_check_hostname=True,  # the test certificate names 127.0.0.1
        socket_timeout=10,
        socket_connect_timeout=10,
    )
    if cert is not None:
        kw.update(ssl_certfile=cert, ssl_keyfile=key)
    return redis.Redis(**kw)


def tls_version(r):
    conn = r.connection_pool.get_connection("PING")
    try:
        conn.connect()
        return conn._sock.version()
    finally:
        r.connection_pool.release(conn)


def commands(args):
    r = client(args, args.port, args.cert, args.key)
    check("PING", r.ping(), True)
    version = tls_version(r)
    if version not in ("TLSv1.2", "TLSv1.3"):
        raise AssertionError("negotiated %r, want TLS 1.2 or 1.3" % version)
    print("ok  negotiated %s" % version)

    check("SET", r.set("py:greeting", "hello"), True)
    check("GET", r.get("py:greeting"), b"hello")
    check("GET of a missing key", r.get("py:missing"), None)
    check("INCR", [r.incr("py:counter") for _ in range(3)], [1, 2, 3])
    check("INCRBY", r.incrby("py:counter", 10), 13)
    check("APPEND", r.append("py:greeting", ", world"), 12)
    check("STRLEN", r.strlen("py:greeting"), 12)

    # Every byte value, and a value larger than one TLS record (16 KiB) many times over.
    binary = bytes(range(256)) * 4
    check("SET/GET of binary bytes", (r.set("py:bin", binary), r.get("py:bin")), (True, binary))
    big = os.urandom(1 << 20)
    check("SET/GET of 1 MiB", (r.set("py:big", big), r.get("py:big") == big), (True, True))

    check("RPUSH", r.rpush("py:list", "a", "b", "c"), 3)
    check("LRANGE", r.lrange("py:list", 0, -1), [b"a", b"b", b"c"])
    check("HSET", r.hset("py:hash", mapping={"f1": "v1", "f2": "v2"}), 2)
    check("HGETALL", r.hgetall("py:hash"), {b"f1": b"v1", b"f2": b"v2"})

    # A pipeline: 200 commands written at once, 200 answers read back in order.
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set("py:k%d" % i, "v%d" % i)
    for i in range(100):
        p.get("py:k%d" % i)
    want = [True] * 100 + [("v%d" % i).encode() for i in range(100)]
    check("pipeline of 200", p.execute(), want)
    check("MGET", r.mget("py:k0", "py:k99", "py:nope"), [b"v0", b"v99", None])
    check("DEL", r.delete(*["py:k%d" % i for i in range(100)]), 100)
    check("EXISTS after DEL", r.exists("py:k0"), 0)

    if args.plain_port:
        plain = redis.Redis(host="127.0.0.1", port=args.plain_port, socket_timeout=10)
        check("plain port sees the TLS port's keys", plain.get("py:greeting"), b"hello, world")
        plain.close()
    r.close()


def refused(args, what, cert=None, key=None):
    r = client(args, args.port, cert, key)
    try:
        r.ping()
    except (redis.exceptions.ConnectionError, ssl.SSLError, OSError) as e:
        print("ok  refused %s (%s)" % (what, type(e).__name__))
        return
    finally:
        r.close()
    raise AssertionError("a client %s was served" % what)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--plain-port", type=int)
    ap.add_argument("--refused-without-cert", action="store_true")
    ap.add_argument("--untrusted-cert")
    ap.add_argument("--untrusted-key")
    args = ap.parse_args()
    print("redis-py %s, %s" % (redis.__version__, ssl.OPENSSL_VERSION))
    commands(args)
    if args.refused_without_cert:
        refused(args, "without a client certificate")
    if args.untrusted_cert:
        refused(args, "with a certificate from another CA", args.untrusted_cert, args.untrusted_key)
    print("redis-py tls: all checks passed")


if __name__ == "__main__":
    main()
