#!/usr/bin/env python3
"""Writes the seed inputs of the three fuzz targets into fuzz/corpus/<target>/seed-*.

Small valid inputs, hand-assembled from the wire formats (docs: src/proto/codec/mod.rs for
jute, src/consensus/transport/frame.rs for peer frames): one of most request kinds, the
handshake in its 3.4 and 3.5 forms, replies and a notification, every peer frame type, and
a few zoo.cfg shapes plus the repo's zoo.cfg.example. Run from anywhere; rerunning rewrites
the same files.
"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "..", "corpus")


def i32(v):
    return struct.pack(">i", v)


def i64(v):
    return struct.pack(">q", v)


def u64(v):
    return struct.pack(">Q", v)


def u32(v):
    return struct.pack(">I", v)


def ustr(s):
    if s is None:
        return i32(-1)
    b = s.encode()
    return i32(len(b)) + b


def buf(b):
    if b is None:
        return i32(-1)
    return i32(len(b)) + b


def boolean(v):
    return b"\x01" if v else b"\x00"


def acl(entries):
    out = i32(len(entries))
    for perms, scheme, ident in entries:
        out += i32(perms) + ustr(scheme) + ustr(ident)
    return out


def strs(items):
    return i32(len(items)) + b"".join(ustr(s) for s in items)


OPEN = [(31, "world", "anyone")]


def req(xid, op, body=b""):
    return i32(xid) + i32(op) + body


def multi_header(op, done=False, err=-1):
    return i32(op) + boolean(done) + i32(err)


def stat():
    return (i64(1) + i64(2) + i64(1_700_000_000_000) + i64(1_700_000_000_001) + i32(0)
            + i32(1) + i32(0) + i64(0) + i32(5) + i32(0) + i64(2))


def jute_seeds():
    s = {}
    s["create"] = req(1, 1, ustr("/a") + buf(b"hello") + acl(OPEN) + i32(0))
    s["create2-seq"] = req(2, 15, ustr("/seq-") + buf(None)
                           + acl([(31, "digest", "user:aGVsbG8="), (1, "world", "anyone")]) + i32(3))
    s["create-ttl"] = req(3, 21, ustr("/ttl") + buf(b"x") + acl(OPEN) + i32(5) + i64(60000))
    s["delete"] = req(4, 2, ustr("/a") + i32(-1))
    s["exists"] = req(5, 3, ustr("/a") + boolean(True))
    s["getdata"] = req(6, 4, ustr("/a") + boolean(False))
    s["setdata"] = req(7, 5, ustr("/a") + buf(b"\x00\xff") + i32(3))
    s["getacl"] = req(8, 6, ustr("/a"))
    s["setacl"] = req(9, 7, ustr("/a") + acl(OPEN) + i32(0))
    s["getchildren2"] = req(10, 12, ustr("/") + boolean(True))
    s["sync"] = req(11, 9, ustr("/a"))
    s["ping"] = req(-2, 11)
    s["check"] = req(12, 13, ustr("/a") + i32(2))
    s["multi"] = req(13, 14,
                     multi_header(1) + ustr("/m1") + buf(b"1") + acl(OPEN) + i32(0)
                     + multi_header(2) + ustr("/m0") + i32(7)
                     + multi_header(5) + ustr("/m1") + buf(b"2") + i32(0)
                     + multi_header(13) + ustr("/m1") + i32(1)
                     + multi_header(-1, True, -1))
    s["multiread"] = req(14, 22,
                         multi_header(8) + ustr("/") + boolean(False)
                         + multi_header(4) + ustr("/a") + boolean(False)
                         + multi_header(-1, True, -1))
    s["reconfig"] = req(15, 16, ustr("server.4=h4:2888:3888;2181") + ustr("3") + ustr(None) + i64(-1))
    s["setwatches"] = req(-8, 101, i64(5) + strs(["/a"]) + strs(["/b"]) + strs([]))
    s["setwatches2"] = req(-8, 105, i64(5) + strs(["/a"]) + strs([]) + strs(["/c"])
                           + strs(["/p"]) + strs(["/r"]))
    s["addwatch"] = req(16, 106, ustr("/a") + i32(1))
    s["removewatches"] = req(17, 18, ustr("/a") + i32(1))
    s["auth"] = req(-4, 100, i32(0) + ustr("digest") + buf(b"user:pass"))
    s["getephemerals"] = req(18, 103, ustr("/"))
    s["allchildren"] = req(19, 104, ustr("/"))
    s["whoami"] = req(20, 107)
    s["close"] = req(21, -11)
    # The handshake: 3.4 (no readOnly byte) and 3.5+.
    s["connect-3.4"] = i32(0) + i64(0) + i32(30000) + i64(0) + buf(b"\x00" * 16)
    s["connect-3.5"] = i32(0) + i64(0x100000005) + i32(18000) + i64(0x1234) + buf(b"\x07" * 16) + boolean(False)
    # Replies: the xid names the opcode the body is decoded as (see fuzz/src/checks.rs).
    s["reply-getdata"] = i32(4) + i64(5) + i32(0) + buf(b"v") + stat()
    s["reply-children2"] = i32(12) + i64(5) + i32(0) + strs(["a", "b"]) + stat()
    s["reply-getacl"] = i32(6) + i64(5) + i32(0) + acl(OPEN) + stat()
    s["reply-create2"] = i32(15) + i64(5) + i32(0) + ustr("/seq-0000000001") + stat()
    s["reply-multi"] = (i32(14) + i64(5) + i32(0) + multi_header(1, False, 0) + ustr("/m1")
                        + multi_header(2, False, 0) + multi_header(-1, True, -1))
    s["notification"] = i32(-1) + i64(-1) + i32(0) + i32(3) + i32(3) + ustr("/a")
    return s


def raft_msg():
    # eraftpb.Message: msg_type=1 (MsgAppend=3), to=2, from=3, term=4, log_term=5, index=6,
    # entries=7 (Entry: entry_type=1, term=2, index=3, data=4), commit=8.
    def varint(n):
        out = b""
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out += bytes([b | 0x80])
            else:
                return out + bytes([b])

    def field(num, wire, payload):
        return varint(num << 3 | wire) + payload

    entry = field(2, 0, varint(7)) + field(3, 0, varint(42)) + field(4, 2, varint(3) + b"txn")
    return (field(1, 0, varint(3)) + field(2, 0, varint(1)) + field(3, 0, varint(2))
            + field(4, 0, varint(7)) + field(5, 0, varint(7)) + field(6, 0, varint(41))
            + field(7, 2, varint(len(entry)) + entry) + field(8, 0, varint(40)))


def frame_seeds():
    v = b"\x01"
    return {
        "hello": v + b"\x01" + u64(1) + u64(3),
        "auth-hello": v + b"\x06" + u64(1) + u64(3) + bytes(range(32)),
        "challenge": v + b"\x07" + b"\x11" * 32 + b"\x22" * 32,
        "proof": v + b"\x08" + b"\x33" * 32,
        "raft-append": v + b"\x02" + raft_msg(),
        "forward": v + b"\x03" + u64(2) + u64(0xFFFFFFFFFFFFFFFF) + u64(9) + b"\x01\x02\x03",
        "touch": v + b"\x04" + u32(2) + i64(-1) + i64(0x100000001),
        "probe-fresh": v + b"\x05\x00" + u32(3) + u64(1) + u64(2) + u64(3) + u32(1) + u64(4),
        "probe-imported": v + b"\x05\x00" + u32(1) + u64(1) + u32(0) + i64(0x500000123),
        "probe-member": v + b"\x05\x01" + u32(0) + u32(0),
    }


def zoocfg_seeds():
    return {
        "standalone": "tickTime=2000\ndataDir=/tmp/keeperd-fuzz\nclientPort=2181\n",
        "ensemble": (
            "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir=/tmp/keeperd-fuzz\n"
            "clientPort=2181\n"
            "server.1=zk1:2888:3888\n"
            "server.2=10.0.0.2:2888:3888:participant;2181\n"
            "server.3=[::1]:2888:3888:observer;127.0.0.1:2182\n"
            "peerType=participant\n"
        ),
        "syntax": (
            "# comment\n! also a comment\nkey\\ with\\ spaces = a\\tb\\u0041\n"
            "4lw.commands.whitelist=ruok, \\\n   srvr,mntr\n"
            "zookeeper.snapCount : 5000\nforceSync no\r\n"
            "authProvider.1=org.apache.zookeeper.server.auth.DigestAuthenticationProvider\n"
            "minSessionTimeout=4000\nmaxSessionTimeout=40000\nreconfigEnabled=true\n"
            "admin.enableServer=false\ndataDir = /tmp/keeperd-fuzz\nclientPort 2181\n"
        ),
    }


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    for name, data in jute_seeds().items():
        write("jute", name, data)
    for name, data in frame_seeds().items():
        write("frame", name, data)
    for name, data in zoocfg_seeds().items():
        write("zoocfg", name, data)
    # The example with its dataDir pointed at the fuzz myid, so that it parses whole.
    with open(os.path.join(HERE, "..", "..", "zoo.cfg.example")) as f:
        example = f.read()
    assert "dataDir=/var/lib/zookeeper\n" in example
    write("zoocfg", "zoo.cfg.example",
          example.replace("dataDir=/var/lib/zookeeper\n", "dataDir=/tmp/keeperd-fuzz\n"))


if __name__ == "__main__":
    main()
