# A plain fdatasync loop under the hub's write pattern, without the hub:
# thread "audit" appends 64 KiB writes at RATE MB/s to 64 MiB files,
# fdatasync every CYCLE ms (rotation: new file + dir fsync); thread "store"
# rewrites 100 random 4 KiB pages of a 300 MiB file + fdatasync every CYCLE ms.
import os, sys, time, threading, random
d = sys.argv[1]; secs = float(sys.argv[2]); rate = float(sys.argv[3]); cycle = 0.02
audit_on = rate > 0
lat = {"audit": [], "store": []}
stop = time.time() + secs
def audit():
    buf = b"x" * 65536
    n = 0; fd = -1; size = 0
    dfd = os.open(d, os.O_RDONLY)
    per_cycle = rate * 1e6 * cycle
    while time.time() < stop:
        t = time.time()
        if fd < 0 or size >= 64 << 20:
            if fd >= 0: os.close(fd)
            p = os.path.join(d, "a%06d" % n); n += 1
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640); size = 0
            os.fsync(dfd)
            if n > 8: os.unlink(os.path.join(d, "a%06d" % (n - 9)))
        w = 0
        while w < per_cycle:
            os.write(fd, buf); w += len(buf); size += len(buf)
        t1 = time.monotonic(); os.fdatasync(fd); lat["audit"].append((time.monotonic() - t1, t))
        dt = cycle - (time.time() - t)
        if dt > 0: time.sleep(dt)
def store():
    p = os.path.join(d, "store.mdb")
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
    os.ftruncate(fd, 300 << 20)
    page = b"y" * 4096
    for off in range(0, 300 << 20, 1 << 20): os.pwrite(fd, b"z" * (1 << 20), off)
    os.fsync(fd)
    while time.time() < stop:
        t = time.time()
        for _ in range(100):
            os.pwrite(fd, page, random.randrange(0, 300 << 8) * 4096)
        t1 = time.monotonic(); os.fdatasync(fd); lat["store"].append((time.monotonic() - t1, t))
        dt = cycle - (time.time() - t)
        if dt > 0: time.sleep(dt)
ths = [threading.Thread(target=store)] + ([threading.Thread(target=audit)] if audit_on else [])
for th in ths: th.start()
for th in ths: th.join()
for k, v in lat.items():
    if not v: continue
    s = sorted(x for x, _ in v)
    slow = [(round(x * 1000, 1), time.strftime("%H:%M:%S", time.gmtime(t))) for x, t in v if x > 0.05]
    print(f"{k}: n={len(s)} p50={s[len(s)//2]*1000:.1f} ms p99={s[int(len(s)*.99)]*1000:.1f} ms max={s[-1]*1000:.1f} ms  >50ms={len(slow)} {slow[:12]}")
