#!/usr/bin/env python3
"""Front-door measurements (issue 16) against a real `tessera` on 127.0.0.1, bounded in time.

    benches/front_door.py BIN timing   # unknown id vs wrong secret: 250 interleaved each
    benches/front_door.py BIN fresh    # 3 rounds of 40 clients created 4 at a time, used at once
    benches/front_door.py BIN flood    # the same while 1,000 req/s of random unknown ids arrive
    benches/front_door.py BIN drip     # 20 connections dripping a body 1 byte / 2 ms: RSS, closes
    benches/front_door.py BIN conns    # 20,000 held connections from 127.0.0.2 vs a client at 127.0.0.1
    benches/front_door.py BIN wrongmem # server RSS during and after 10 s of wrong secrets (64 at once)
    benches/front_door.py BIN floods   # issue 14: a cached client's throughput alone and under 1,000 req/s
                                       # of wrong secrets on known ids + 1,000 req/s of unknown ids;
                                       # a new client's first token during them; server RSS

BIN is a release build of `tessera`. Only loopback addresses are contacted. Python 3 stdlib only
(wrk for the `conns` rate).
"""
import base64, http.client, json, os, random, resource, socket, statistics, string, subprocess
import sys, tempfile, threading, time

BIN = sys.argv[1]
WHAT = sys.argv[2]
DATA = tempfile.mkdtemp(prefix="tessera-fd-")


def cli(*args):
    out = subprocess.run([BIN, "--data-dir", DATA, *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def create(name):
    v = cli("client", "create", "--name", name, "--scope", "s", "--output", "json")
    return v["client_id"], v["client_secret"]


def start(*extra):
    p = subprocess.Popen([BIN, "--data-dir", DATA, "serve", "--listen", "127.0.0.1:0", *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = p.stdout.readline()
    addr = line.split("http://")[1].split()[0]
    host, port = addr.rsplit(":", 1)
    return p, host, int(port)


def token(host, port, cid, secret, timeout=10):
    auth = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    t = time.perf_counter()
    c.request("POST", "/oauth/token", "grant_type=client_credentials",
              {"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, time.perf_counter() - t, r.getheader("Retry-After"), body


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return 0.0


def timing():
    cid, secret = create("known")
    p, host, port = start()
    try:
        token(host, port, cid, secret)
        wrong, unknown = [], []
        for _ in range(250):
            s, t, _, b1 = token(host, port, cid, "tss_wrong")
            assert s == 401
            wrong.append(t)
            fake = "tc_" + "".join(random.choice(string.ascii_letters) for _ in range(22))
            s, t, _, b2 = token(host, port, fake, "tss_wrong")
            assert s == 401 and b1 == b2, (b1, b2)
            unknown.append(t)
        q = lambda xs: statistics.quantiles(xs, n=10)
        mw, mu = statistics.median(wrong), statistics.median(unknown)
        print(f"wrong secret, known id: median {mw*1e3:.1f} ms, p10 {q(wrong)[0]*1e3:.1f}, p90 {q(wrong)[-1]*1e3:.1f}")
        print(f"unknown id:             median {mu*1e3:.1f} ms, p10 {q(unknown)[0]*1e3:.1f}, p90 {q(unknown)[-1]*1e3:.1f}")
        print(f"medians differ by {abs(mw-mu)/mw*100:.1f} % (same status and body: checked on every pair)")
    finally:
        p.kill()


def flooder(host, port, rate, stop, counts, who=None):
    """`rate` requests/s of random unknown ids, spread over 48 threads (an answer takes as long as
    an argon2id check, ~20 ms, so 1,000 req/s needs ~20 in flight), each on its own keep-alive
    connection, each pacing itself."""
    threads = 48
    def run():
        c = http.client.HTTPConnection(host, port, timeout=10)
        interval = threads / rate
        nxt = time.perf_counter()
        while not stop.is_set():
            if who is None:
                fake = "tc_" + "".join(random.choice(string.ascii_letters) for _ in range(22))
            else:
                fake = random.choice(who)  # a known id, with a wrong secret
            auth = base64.b64encode(f"{fake}:tss_x".encode()).decode()
            try:
                c.request("POST", "/oauth/token", "grant_type=client_credentials",
                          {"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
                r = c.getresponse(); r.read()
                counts[r.status] = counts.get(r.status, 0) + 1
            except Exception:
                c.close(); c = http.client.HTTPConnection(host, port, timeout=10)
            nxt += interval
            d = nxt - time.perf_counter()
            if d > 0:
                time.sleep(d)
    ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    return ts


def fresh(flood):
    p, host, port = start()
    stop = threading.Event()
    counts = {}
    if flood:
        flooder(host, port, 1000, stop, counts)
        time.sleep(2)
        flood_start = time.perf_counter()
        flood_before = sum(counts.values())
    try:
        for rnd in range(3):
            results = []
            lock = threading.Lock()
            def worker(w):
                for i in range(10):
                    cid, secret = create(f"fresh-{rnd}-{w}-{i}")
                    t0 = time.perf_counter()
                    first, _, ra, _ = token(host, port, cid, secret)
                    status, tries = first, 1
                    while status == 503 and time.perf_counter() - t0 < 5:
                        time.sleep(float(ra or 1))
                        status, _, ra, _ = token(host, port, cid, secret)
                        tries += 1
                    with lock:
                        results.append((first, status, tries, time.perf_counter() - t0))
            ts = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
            for t in ts: t.start()
            for t in ts: t.join()
            ok_first = sum(1 for r in results if r[0] == 200)
            ok = sum(1 for r in results if r[1] == 200)
            slowest = max(r[3] for r in results)
            print(f"round {rnd+1}: {ok_first}/40 token on the first attempt, {ok}/40 in the end, "
                  f"slowest {slowest:.2f} s, first answers {sorted(set(r[0] for r in results))}")
        if flood:
            took = time.perf_counter() - flood_start
            n = sum(counts.values()) - flood_before
            print(f"flood: {n / took:.0f} req/s of unknown ids during the rounds; answers {counts}")
    finally:
        stop.set()
        p.kill()


def wrk_rps(host, port, cid, secret, secs=8):
    auth = "Basic " + base64.b64encode(f"{cid}:{secret}".encode()).decode()
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{secs}s", "-s", "benches/post.lua", f"http://{host}:{port}/oauth/token"],
                         capture_output=True, text=True, env={**os.environ, "AUTH": auth, "BODY": "grant_type=client_credentials"})
    line = [l for l in out.stdout.splitlines() if l.startswith("RESULT")][0]
    return float(line.split("req_per_s=")[1].split()[0]), line


def floods():
    """Issue 14: the floods come from wrk with a rate-limited Lua script (benches/flood.lua), not
    from Python, so the generator costs the shared cores about what the legitimate load does."""
    p, host, port = start("--signing-alg", "ES256")
    try:
        cid, secret = create("legit")
        token(host, port, cid, secret)
        known = [create(f"known-{i}")[0] for i in range(40)]
        alone, line = wrk_rps(host, port, cid, secret)
        print(f"alone: {line}")
        url = f"http://{host}:{port}/oauth/token"
        floods = []
        for mode in ("unknown", "wrong"):
            env = {**os.environ, "FLOOD": mode, "KNOWN": ",".join(known), "CONNS": "64", "RATE": "1000"}
            floods.append(subprocess.Popen(["wrk", "-t1", "-c64", "-d24s", "-s", "benches/flood.lua", url],
                                           stdout=subprocess.PIPE, text=True, env=env))
        # The first seconds: each known id spends its failure budget (5 argon2id checks, on
        # the one argon2id worker a 2-core machine has). Measured first, then the steady state.
        burst, line = wrk_rps(host, port, cid, secret, secs=6)
        print(f"flooded, first 6 s (budgets being spent): {line}")
        time.sleep(2)
        flooded, line = wrk_rps(host, port, cid, secret)
        print(f"flooded, steady state: {line}")
        print(f"ratio: first 6 s {100 * burst / alone:.1f} %, steady state {100 * flooded / alone:.1f} % of the throughput alone")
        firsts = []
        for i in range(5):
            ncid, nsecret = create(f"new-{i}")
            status, took1, _, _ = token(host, port, ncid, nsecret)
            firsts.append((status, round(took1, 3)))
        print(f"new clients' first token during the floods (status, s): {firsts}")
        print(f"RSS during the floods: {rss_mib(p.pid):.0f} MiB")
        for f in floods:
            out, _ = f.communicate(timeout=30)
            print(" ".join(l for l in out.splitlines() if l.startswith("FLOOD")))
        time.sleep(3)
        print(f"RSS 3 s after: {rss_mib(p.pid):.0f} MiB")
    finally:
        p.kill()


def drip():
    p, host, port = start()
    try:
        time.sleep(0.5)
        before = rss_mib(p.pid)
        peak = before
        closed_after = []
        def conn():
            s = socket.create_connection((host, port))
            s.sendall(f"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 16000\r\n\r\n".encode())
            t0 = time.perf_counter()
            s.settimeout(0.002)
            for _ in range(16000):
                try:
                    s.sendall(b"a")
                except OSError:
                    break
                try:
                    if s.recv(4096) == b"":
                        break
                except socket.timeout:
                    pass
                except OSError:
                    break
            closed_after.append(time.perf_counter() - t0)
            s.close()
        ts = [threading.Thread(target=conn) for _ in range(20)]
        for t in ts: t.start()
        while any(t.is_alive() for t in ts):
            peak = max(peak, rss_mib(p.pid))
            time.sleep(0.2)
        time.sleep(5)
        after = rss_mib(p.pid)
        print(f"RSS before {before:.1f} MiB, peak {peak:.1f} MiB (+{peak-before:.1f}), "
              f"5 s after the last close {after:.1f} MiB (+{after-before:.1f})")
        print(f"connections closed by the server after {min(closed_after):.1f}-{max(closed_after):.1f} s")
    finally:
        p.kill()


def conns():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 30000), max(hard, 30000)))
    except (ValueError, OSError):
        pass  # keep what we have; attempts beyond it fail on the client side and are counted
    cid, secret = create("ok")
    p, host, port = start()
    auth = base64.b64encode(f"{cid}:{secret}".encode()).decode()
    env = dict(os.environ, AUTH="Basic " + auth, BODY="grant_type=client_credentials")
    def rate():
        out = subprocess.run(["wrk", "-t2", "-c32", "-d5s", "-s", "benches/post.lua", f"http://{host}:{port}/oauth/token"],
                             capture_output=True, text=True, env=env).stdout
        line = [l for l in out.splitlines() if l.startswith("RESULT")][0]
        return float(line.split("req_per_s=")[1].split()[0]), line
    try:
        token(host, port, cid, secret)
        alone, _ = rate()
        held, refused = [], 0
        for _ in range(20000):
            try:
                s = socket.socket()
            except OSError:
                refused += 1
                continue
            s.bind(("127.0.0.2", 0))
            try:
                s.connect((host, port))
                s.sendall(b"POST /oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
                held.append(s)
            except OSError:
                refused += 1
                s.close()
        time.sleep(1)
        alive, still_open = 0, []
        for s in held:
            s.setblocking(False)
            try:
                open_now = s.recv(1) != b""
            except BlockingIOError:
                open_now = True
            except OSError:
                open_now = False
            if open_now:
                alive += 1
                still_open.append(s)
            else:
                s.close()  # closed by the server: give the descriptor back for wrk
        connected = len(held)
        held = still_open
        during, line = rate()
        print(f"127.0.0.1 alone: {alone:.0f} req/s; while 127.0.0.2 tried 20,000 connections "
              f"({connected} connected, {alive} of them still open after 1 s, the rest closed by "
              f"the server; {refused} not even opened): {during:.0f} req/s "
              f"= {during/alone*100:.0f} % ({line})")
        for s in held:
            s.close()
    finally:
        p.kill()


def wrongmem():
    cid, _ = create("victim")
    p, host, port = start()
    try:
        time.sleep(0.5)
        before = rss_mib(p.pid)
        peak = [before]
        stop = threading.Event()
        counts = {}
        lock = threading.Lock()
        def run():
            auth = base64.b64encode(f"{cid}:tss_wrong".encode()).decode()
            c = http.client.HTTPConnection(host, port, timeout=30)
            while not stop.is_set():
                try:
                    c.request("POST", "/oauth/token", "grant_type=client_credentials",
                              {"Authorization": "Basic " + auth, "Content-Type": "application/x-www-form-urlencoded"})
                    r = c.getresponse(); r.read()
                    with lock:
                        counts[r.status] = counts.get(r.status, 0) + 1
                except Exception:
                    c.close(); c = http.client.HTTPConnection(host, port, timeout=30)
        ts = [threading.Thread(target=run, daemon=True) for _ in range(64)]
        for t in ts: t.start()
        end = time.time() + 10
        while time.time() < end:
            peak[0] = max(peak[0], rss_mib(p.pid))
            time.sleep(0.2)
        stop.set()
        for t in ts: t.join(timeout=35)
        time.sleep(2)
        after = rss_mib(p.pid)
        print(f"RSS before {before:.1f} MiB, peak during {peak[0]:.1f} MiB, 2 s after {after:.1f} MiB; answers {counts}")
    finally:
        p.kill()


{"floods": floods, "wrongmem": wrongmem, "timing": timing, "fresh": lambda: fresh(False), "flood": lambda: fresh(True), "drip": drip, "conns": conns}[WHAT]()
