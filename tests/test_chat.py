#!/usr/bin/env python3
# test_chat: sink chat at a real terminal (a pty) against a real sinkd on
# a private socket with a synthetic model: line editing (a left-arrow
# edit sends the edited text, no escape bytes), the history (the up
# arrow recalls the last line, in this sink and in the next, kept in a
# 0600 file), Ctrl-C at the prompt and during a reply, a restart of
# sinkd while the chat waits (the line typed meanwhile is answered and
# stored), bare `sink` on a terminal starting a chat, UTF-8 typed under
# the C locale, a terminal that hangs up, and piped chat input as before.
# Standard library only.  Prints "N passed, N failed".
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

bindir = os.environ.get("SINKD_BUILDDIR", ".")
sink = os.path.join(bindir, "sink")
tmp = tempfile.mkdtemp(prefix="sinkd-test-chat-")
env = dict(os.environ)
env.update(SINKD_SOCKET=os.path.join(tmp, "d", "sock"),
           XDG_STATE_HOME=os.path.join(tmp, "state"), LC_ALL="C.UTF-8",
           TERM="xterm")
env.pop("XDG_RUNTIME_DIR", None)
passed = failed = 0
daemon = None


def ok(name):
    global passed
    passed += 1
    print("ok: " + name, flush=True)


def bad(name, why):
    global failed
    failed += 1
    print("FAIL: %s: %s" % (name, why), flush=True)


def check(name, cond, why):
    if cond:
        ok(name)
    else:
        bad(name, why)


def run(*args, stdin=None):
    return subprocess.run([sink] + list(args), env=env, input=stdin,
                          capture_output=True, timeout=30)


def start_sinkd():
    global daemon
    log = open(os.path.join(tmp, "sinkd.log"), "ab")
    daemon = subprocess.Popen([os.path.join(bindir, "sinkd"), "-m",
                               os.path.join(tmp, "m.gguf"), "-t", "1"],
                              env=env, stderr=log, stdin=subprocess.DEVNULL)
    for _ in range(100):
        if run("status").returncode == 0:
            return
        time.sleep(0.1)


def stop_sinkd():
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=30)


def turns(session):
    r = run("--json", "log", session)
    if r.returncode != 0:
        return []
    return [json.loads(line) for line in r.stdout.decode().splitlines()]


class Pty:
    """sink on a pseudo-terminal: what it writes, collected."""

    def __init__(self, args, env=env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.execve(sink, [sink] + args, env)
        self.out = b""
        self.status = None

    def pump(self, secs):
        end = time.time() + secs
        while self.fd is not None:
            left = end - time.time()
            if left <= 0:
                return
            r, _, _ = select.select([self.fd], [], [], left)
            if not r:
                return
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                data = b""
            if not data:
                os.close(self.fd)
                self.fd = None
                return
            self.out += data

    def expect(self, what, secs=20, start=0):
        """Until what is in the output from byte start on."""
        end = time.time() + secs
        while what not in self.out[start:] and self.fd is not None and \
                time.time() < end:
            self.pump(0.1)
        return what in self.out[start:]

    def send(self, data):
        if self.fd is not None:
            os.write(self.fd, data)

    def wait_turns(self, session, n, secs=30):
        """Until session has n turns (pumping output meanwhile)."""
        end = time.time() + secs
        while time.time() < end:
            t = turns(session)
            if len(t) >= n:
                return t
            self.pump(0.2)
        return turns(session)

    def finish(self, secs=10):
        end = time.time() + secs
        while time.time() < end:
            self.pump(0.1)
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid != 0:
                self.status = os.waitstatus_to_exitcode(st)
                return self.status
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        return None


def tail(p):
    return repr(p.out[-300:])


def main():
    if not os.access(sink, os.X_OK):
        print("FAIL: %s not built (set SINKD_BUILDDIR)" % sink)
        return 1
    if subprocess.run([os.path.join(bindir, "sinkd-mkmodel"), "-o",
                       os.path.join(tmp, "m.gguf"), "--shape", "tiny",
                       "--type", "Q8_0", "--seed", "4", "--n-embd", "512",
                       "--n-layer", "8", "--n-ff", "1024", "--n-head", "8",
                       "--n-head-kv", "8"],
                      capture_output=True).returncode != 0:
        print("FAIL: sinkd-mkmodel failed")
        return 1
    start_sinkd()
    opts = ["-n", "4", "--temp", "0"]

    # (a) A left-arrow edit: "hllo", three lefts, "e" is "hello".
    p = Pty(["chat", "-s", "ed"] + opts)
    if not p.expect(b"> "):
        bad("chat on a terminal shows a prompt", tail(p))
    p.send(b"hllo\x1b[D\x1b[D\x1b[De\r")
    t = p.wait_turns("ed", 2)
    check("a left-arrow edit sends the edited line",
          len(t) >= 1 and t[0]["role"] == "user" and t[0]["text"] == "hello",
          "turns %r, output %s" % (t[:1], tail(p)))

    # (b) The up arrow recalls "hello"; the history file is private.
    p.send(b"\x1b[A\r")
    t = p.wait_turns("ed", 4)
    check("the up arrow recalls the last line",
          len(t) >= 3 and t[2]["text"] == "hello",
          "turns %r, output %s" % (t[2:3], tail(p)))
    hist = os.path.join(tmp, "state", "sinkd", "chat_history")
    try:
        st = os.stat(hist)
        with open(hist, "rb") as f:
            kept = f.read()
        check("the history file: mode 0600, the line in it",
              st.st_mode & 0o777 == 0o600 and b"hello" in kept,
              "mode %o, %r" % (st.st_mode & 0o777, kept[:200]))
    except OSError as e:
        bad("the history file", str(e))

    # (c) sinkd stops while the chat waits at the prompt; a line typed
    # then is sent once it is back, and stored.
    p.pump(0.5)
    stop_sinkd()
    p.send(b"after the restart\r")
    went = p.expect(b"reconnecting", 10)
    time.sleep(1)
    start_sinkd()
    t = p.wait_turns("ed", 6)
    check("after a restart of sinkd the typed line is answered and stored",
          went and len(t) >= 6 and t[4]["text"] == "after the restart" and
          t[5]["role"] == "assistant",
          "turns %r, output %s" % (t[4:], tail(p)))
    p.send(b"/quit\r")
    check("/quit leaves with status 0", p.finish() == 0,
          "status %r, %s" % (p.status, tail(p)))

    # The history outlives the process (the last line was /quit).
    p = Pty(["chat", "-s", "h2"] + opts)
    p.expect(b"> ")
    p.send(b"\x1b[A\x1b[A\r")
    t = p.wait_turns("h2", 2)
    check("the history is there in the next sink chat",
          len(t) >= 1 and t[0]["text"] == "after the restart",
          "turns %r, output %s" % (t[:1], tail(p)))
    # sinkd restarted while the chat waits: the next line goes through.
    p.pump(0.5)
    stop_sinkd()
    start_sinkd()
    n = len(p.out)
    p.send(b"once it is back\r")
    t = p.wait_turns("h2", 4)
    check("a line typed after sinkd restarted is answered and stored",
          len(t) >= 4 and t[2]["text"] == "once it is back" and
          b"reconnecting" in p.out[n:], "turns %r, output %s" %
          (t[2:], tail(p)))
    # Ctrl-C at the prompt ends sink at once.
    p.pump(0.5)
    p.send(b"\x03")
    check("Ctrl-C at the prompt leaves with status 130",
          p.finish() == 130, "status %r, %s" % (p.status, tail(p)))

    # UTF-8 typed in the C locale arrives whole.
    p = Pty(["chat", "-s", "u8"] + opts, dict(env, LC_ALL="C"))
    p.expect(b"> ")
    typed = "h\u00e9llo w\u00f6rld \u2014 \u65e5\u672c"
    p.send((typed + "\r").encode())
    t = p.wait_turns("u8", 2)
    p.send(b"/quit\r")
    p.finish()
    check("UTF-8 typed in the C locale is sent whole",
          len(t) >= 1 and t[0]["text"] == typed,
          "turns %r, output %s" % (t[:1], tail(p)))

    # Ctrl-C during a reply stops only that reply.  The model is large
    # enough that a greedy reply of 4096 tokens takes seconds.
    p = Pty(["chat", "-s", "cc", "-n", "4096", "--temp", "0"])
    p.expect(b"> ")
    p.send(b"go on and on\r")
    p.pump(1)
    n = len(p.out)
    p.send(b"\x03")
    back = p.expect(b"> ", 15, n)
    p.send(b"/quit\r")
    status = p.finish()
    check("Ctrl-C during a reply stops it and the chat goes on",
          back and status == 0, "status %r, %s" % (status, tail(p)))

    # (d) Bare sink on a terminal is a chat.
    p = Pty(["-s", "bare"] + opts)
    started = p.expect(b"sink: session bare; /help") and p.expect(b"> ")
    p.send(b"hi there\r")
    t = p.wait_turns("bare", 2)
    p.send(b"\x04")
    status = p.finish()
    check("bare sink on a terminal starts a chat",
          started and len(t) >= 1 and t[0]["text"] == "hi there" and
          status == 0, "status %r, %s" % (status, tail(p)))

    # A terminal that hangs up (SIGHUP ignored, as under nohup) ends the
    # chat, instead of a prompt polling a dead terminal for ever.
    pid, fd = pty.fork()
    if pid == 0:
        os.execve("/bin/sh", ["sh", "-c", 'trap "" HUP; exec "$0" chat',
                              sink], env)
    time.sleep(1)
    os.close(fd)
    end = time.time() + 10
    status = None
    while status is None and time.time() < end:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
        time.sleep(0.05)
    if status is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    check("a terminal that hangs up ends the chat", status == 0,
          "still running after 10 s" if status is None else
          "status %d" % status)

    # Piped lines: read as before, backslash continuation included.
    r = run("chat", "-s", "pipe", *opts, stdin=b"one\\\ntwo\nthree\n")
    t = turns("pipe")
    check("piped chat: a line per turn, continued lines joined",
          r.returncode == 0 and [x["text"] for x in t
                                 if x["role"] == "user"] ==
          ["one\ntwo", "three"], "rc %d, turns %r, %r" %
          (r.returncode, t, r.stderr[-300:]))
    r = run(*opts, "-s", "pipe2", stdin=b"a piped turn\n")
    check("bare sink with piped stdin: one turn",
          r.returncode == 0 and
          [x["text"] for x in turns("pipe2")] [:1] == ["a piped turn\n"],
          "rc %d, %r" % (r.returncode, r.stderr[-300:]))
    stop_sinkd()
    return 0


try:
    rc = main()
finally:
    if daemon is not None and daemon.poll() is None:
        daemon.kill()
        daemon.wait()
    shutil.rmtree(tmp, ignore_errors=True)
print("chat: %d passed, %d failed" % (passed, failed))
sys.exit(1 if rc != 0 or failed > 0 else 0)
