// Apache Curator 5.4 (Debian libcurator-*-java) recipes against a running server.
//
//   java -cp <curator+zookeeper jars>:<classes> CuratorRecipes HOST:PORT RECIPE
//
// RECIPE: leaderlatch | mutex | atomiclong | curatorcache | addwatch | persistentnode
// Each recipe works under its own root /curator-<recipe>-<nanotime>, asserts as
// it goes, prints "step ..." lines, and ends with "PASS <recipe>" (exit 0) or
// "FAIL <recipe>: <what>" (exit 1). Every wait is bounded. Run by
// tests/compat/test_curator.py with the same asserts against ZooKeeper 3.8 and
// keeperd.

import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;

import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.atomic.AtomicValue;
import org.apache.curator.framework.recipes.atomic.DistributedAtomicLong;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.retry.RetryNTimes;
import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.data.Stat;

public class CuratorRecipes {
    static final long WAIT_S = 15;
    /** ZooKeeper stores containers with ephemeralOwner 0x8000000000000000
     *  (EphemeralType.CONTAINER) but shows clients 0 (DataNode.copyStat). */
    static final long CONTAINER_OWNER_SEEN = 0;

    static String connect;
    static final List<CuratorFramework> clients = new ArrayList<>();

    static class Failure extends RuntimeException {
        Failure(String m) { super(m); }
    }

    static void check(boolean cond, String what) {
        if (!cond) throw new Failure(what);
    }

    static void step(String s) {
        System.out.println("step " + s);
        System.out.flush();
    }

    static byte[] b(String s) { return s.getBytes(java.nio.charset.StandardCharsets.UTF_8); }

    static String s(byte[] d) { return d == null ? "null" : new String(d, java.nio.charset.StandardCharsets.UTF_8); }

    static CuratorFramework client() throws Exception {
        CuratorFramework c = CuratorFrameworkFactory.builder()
                .connectString(connect)
                .sessionTimeoutMs(10000)
                .connectionTimeoutMs(10000)
                .retryPolicy(new RetryNTimes(5, 200))
                .build();
        clients.add(c);
        c.start();
        check(c.blockUntilConnected((int) WAIT_S, TimeUnit.SECONDS), "client connects to " + connect);
        return c;
    }

    interface Cond { boolean ok() throws Exception; }

    static void waitFor(Cond c, String what) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(WAIT_S);
        while (System.nanoTime() < deadline) {
            if (c.ok()) return;
            Thread.sleep(20);
        }
        throw new Failure("timed out after " + WAIT_S + "s waiting for " + what);
    }

    // -- LeaderLatch -------------------------------------------------------

    static void leaderLatch(String root) throws Exception {
        CuratorFramework c1 = client(), c2 = client(), c3 = client();
        String path = root + "/latch";
        LeaderLatch a = new LeaderLatch(c1, path, "a");
        LeaderLatch b = new LeaderLatch(c2, path, "b");
        LeaderLatch c = new LeaderLatch(c3, path, "c");
        a.start();
        check(a.await(WAIT_S, TimeUnit.SECONDS), "a (first) becomes leader");
        b.start();
        c.start();
        waitFor(() -> a.getParticipants().size() == 3, "3 participants");
        check(!b.await(300, TimeUnit.MILLISECONDS), "b is not leader while a leads");
        check(a.hasLeadership() && !b.hasLeadership() && !c.hasLeadership(), "only a leads");
        check(b.getLeader().getId().equals("a"), "b sees a as leader");
        check(c1.getChildren().forPath(path).size() == 3, "3 latch znodes");
        step("a leads; participants=3");
        a.close();
        waitFor(() -> b.hasLeadership() || c.hasLeadership(), "b or c leads after a closes");
        LeaderLatch next = b.hasLeadership() ? b : c, other = next == b ? c : b;
        CuratorFramework nextClient = next == b ? c2 : c3, otherClient = next == b ? c3 : c2;
        check(!other.hasLeadership(), "exactly one leader after a closes");
        check(other.getLeader().getId().equals(next.getId()), "the other latch sees the new leader");
        step("second latch leads after the first latch closed");
        // The leader's whole session goes away: its ephemeral latch node with it.
        nextClient.close();
        check(other.await(WAIT_S, TimeUnit.SECONDS), "last latch leads after the leader's session closes");
        waitFor(() -> otherClient.getChildren().forPath(path).size() == 1, "only the last latch znode left");
        step("last latch leads after the leader's session closed");
        other.close();
        waitFor(() -> otherClient.getChildren().forPath(path).isEmpty(), "no latch znodes left");
    }

    // -- InterProcessMutex ---------------------------------------------------

    static void mutex(String root) throws Exception {
        CuratorFramework c1 = client(), c2 = client();
        String path = root + "/lock";
        InterProcessMutex m1 = new InterProcessMutex(c1, path);
        InterProcessMutex m2 = new InterProcessMutex(c2, path);
        check(m1.acquire(WAIT_S, TimeUnit.SECONDS), "m1 acquires");
        check(m1.acquire(WAIT_S, TimeUnit.SECONDS), "m1 re-enters");
        check(m1.isAcquiredInThisProcess(), "m1 held");
        check(!m2.acquire(300, TimeUnit.MILLISECONDS), "m2 cannot acquire while m1 holds");
        ExecutorService ex = Executors.newFixedThreadPool(4);
        // Curator's mutex is owned by a thread: m2 is acquired and released on this one.
        ExecutorService m2Thread = Executors.newSingleThreadExecutor();
        try {
            Future<Boolean> f = m2Thread.submit(() -> m2.acquire(WAIT_S, TimeUnit.SECONDS));
            Thread.sleep(300);
            check(!f.isDone(), "m2 waits");
            m1.release();
            Thread.sleep(300);
            check(!f.isDone(), "m2 still waits after one of two releases");
            m1.release();
            check(f.get(WAIT_S, TimeUnit.SECONDS), "m2 acquires after m1 fully released");
            step("reentrant hold, blocked waiter, hand-over");
            check(m2Thread.submit(() -> { m2.release(); return true; }).get(WAIT_S, TimeUnit.SECONDS),
                    "m2 released by its owner thread");
            waitFor(() -> m1.getParticipantNodes().isEmpty(), "no lock znodes left");

            // Mutual exclusion: 4 workers (2 per client), 10 rounds each.
            AtomicBoolean inside = new AtomicBoolean(false);
            AtomicInteger rounds = new AtomicInteger(), overlaps = new AtomicInteger();
            List<Future<?>> fs = new ArrayList<>();
            for (int w = 0; w < 4; w++) {
                InterProcessMutex m = new InterProcessMutex(w % 2 == 0 ? c1 : c2, path);
                fs.add(ex.submit(() -> {
                    for (int i = 0; i < 10; i++) {
                        check(m.acquire(WAIT_S, TimeUnit.SECONDS), "worker acquires");
                        try {
                            if (!inside.compareAndSet(false, true)) overlaps.incrementAndGet();
                            Thread.sleep(2);
                            rounds.incrementAndGet();
                            inside.set(false);
                        } finally {
                            m.release();
                        }
                    }
                    return null;
                }));
            }
            for (Future<?> x : fs) x.get(60, TimeUnit.SECONDS);
            check(overlaps.get() == 0, "no two holders at once, overlaps=" + overlaps.get());
            check(rounds.get() == 40, "40 rounds, got " + rounds.get());
            step("4 workers x 10 rounds, no overlap");
        } finally {
            ex.shutdownNow();
            m2Thread.shutdownNow();
        }
    }

    // -- DistributedAtomicLong -------------------------------------------------

    static AtomicValue<Long> retried(java.util.concurrent.Callable<AtomicValue<Long>> op) throws Exception {
        for (int i = 0; i < 200; i++) {
            AtomicValue<Long> v = op.call();
            if (v.succeeded()) return v;
        }
        throw new Failure("atomic op never succeeded in 200 tries");
    }

    static void atomicLong(String root) throws Exception {
        CuratorFramework c1 = client(), c2 = client();
        String path = root + "/counter";
        DistributedAtomicLong d1 = new DistributedAtomicLong(c1, path, new RetryNTimes(20, 10));
        DistributedAtomicLong d2 = new DistributedAtomicLong(c2, path, new RetryNTimes(20, 10));
        AtomicValue<Long> v = d1.get();
        check(v.succeeded() && v.postValue() == 0L, "missing counter reads 0");
        check(d1.initialize(10L), "d1 initializes to 10");
        check(!d2.initialize(20L), "d2 cannot initialize an existing counter");
        check(d2.get().postValue() == 10L, "d2 reads 10");
        v = d1.increment();
        check(v.succeeded() && v.preValue() == 10L && v.postValue() == 11L, "increment 10->11");
        v = d2.add(5L);
        check(v.succeeded() && v.postValue() == 16L, "add 5 -> 16");
        v = d1.compareAndSet(16L, 100L);
        check(v.succeeded() && v.postValue() == 100L, "CAS 16->100");
        v = d2.compareAndSet(16L, 200L);
        check(!v.succeeded() && v.preValue() == 100L, "CAS with stale expected value fails");
        v = d2.decrement();
        check(v.succeeded() && v.postValue() == 99L, "decrement -> 99");
        d1.forceSet(42L);
        check(d2.get().postValue() == 42L, "forceSet 42");
        step("initialize/increment/add/CAS/decrement/forceSet");
        ExecutorService ex = Executors.newFixedThreadPool(4);
        try {
            List<Future<?>> fs = new ArrayList<>();
            for (int w = 0; w < 4; w++) {
                DistributedAtomicLong d = w % 2 == 0 ? d1 : d2;
                fs.add(ex.submit(() -> {
                    for (int i = 0; i < 25; i++) retried(d::increment);
                    return null;
                }));
            }
            for (Future<?> x : fs) x.get(60, TimeUnit.SECONDS);
        } finally {
            ex.shutdownNow();
        }
        long fin = d1.get().postValue();
        check(fin == 142L, "4 x 25 concurrent increments from 42 give 142, got " + fin);
        Stat st = c1.checkExists().forPath(path);
        check(st != null && st.getDataLength() == 8, "counter znode holds 8 bytes");
        check(st.getVersion() >= 100, "counter znode version >= 100 (one set per increment), got " + st.getVersion());
        step("concurrent increments: 142");
    }

    // -- CuratorCache (persistent recursive watch) ----------------------------

    static void curatorCache(String root) throws Exception {
        CuratorFramework c1 = client(), c2 = client();
        String base = root + "/cache";
        c1.create().creatingParentsIfNeeded().forPath(base, b("root"));
        c1.create().forPath(base + "/pre", b("p"));
        BlockingQueue<String> events = new LinkedBlockingQueue<>();
        CountDownLatch initialized = new CountDownLatch(1);
        CuratorCacheListener l = CuratorCacheListener.builder()
                .forAll((type, oldData, data) -> {
                    ChildData d = data != null ? data : oldData;
                    events.add(type + " " + d.getPath().substring(base.length()) + " " + s(d.getData()));
                })
                .forInitialized(initialized::countDown)
                .build();
        CuratorCache cache = CuratorCache.build(c2, base);
        cache.listenable().addListener(l);
        cache.start();
        try {
            check(initialized.await(WAIT_S, TimeUnit.SECONDS), "cache initialized");
            List<String> initial = new ArrayList<>();
            events.drainTo(initial);
            initial.sort(null);
            check(initial.toString().equals("[NODE_CREATED  root, NODE_CREATED /pre p]"),
                    "initial events, got " + initial);
            check(cache.size() == 2, "cache holds 2 nodes");
            step("initial " + initial);

            expect(events, () -> c1.create().forPath(base + "/a", b("1")), "NODE_CREATED /a 1");
            expect(events, () -> c1.create().forPath(base + "/a/b", b("2")), "NODE_CREATED /a/b 2");
            expect(events, () -> c1.create().forPath(base + "/a/b/c", b("3")), "NODE_CREATED /a/b/c 3");
            expect(events, () -> c1.setData().forPath(base + "/a/b/c", b("x")), "NODE_CHANGED /a/b/c x");
            expect(events, () -> c1.setData().forPath(base + "/a/b/c", b("y")), "NODE_CHANGED /a/b/c y");
            expect(events, () -> c1.delete().forPath(base + "/a/b/c"), "NODE_DELETED /a/b/c y");
            expect(events, () -> c1.setData().forPath(base, b("root2")), "NODE_CHANGED  root2");
            // An ephemeral from another session, then that session closes.
            CuratorFramework c3 = client();
            expect(events, () -> c3.create().withMode(CreateMode.EPHEMERAL).forPath(base + "/a/e", b("eph")),
                    "NODE_CREATED /a/e eph");
            expect(events, () -> c3.close(), "NODE_DELETED /a/e eph");
            waitFor(() -> cache.size() == 4, "cache holds root, /pre, /a, /a/b");
            Optional<ChildData> ab = cache.get(base + "/a/b");
            check(ab.isPresent() && s(ab.get().getData()).equals("2"), "cache has /a/b = 2");
            check(!cache.get(base + "/a/b/c").isPresent(), "deleted /a/b/c not in cache");
            check(cache.get(base + "/a/b").get().getStat().getNumChildren() == 0,
                    "cached stat of /a/b has 0 children");
            step("create/change/delete events down to depth 3 from one persistent recursive watch");
            Thread.sleep(200);
            check(events.isEmpty(), "no unexpected events, got " + events);
        } finally {
            cache.close();
        }
    }

    interface Op { void run() throws Exception; }

    static void expect(BlockingQueue<String> events, Op op, String want) throws Exception {
        op.run();
        String got = events.poll(WAIT_S, TimeUnit.SECONDS);
        check(want.equals(got), "expected event '" + want + "', got '" + got + "'");
    }

    // -- addWatch directly: PERSISTENT and PERSISTENT_RECURSIVE -----------------

    static void addWatch(String root) throws Exception {
        CuratorFramework c1 = client(), c2 = client(), c3 = client();
        String base = root + "/w";
        c1.create().creatingParentsIfNeeded().forPath(base, b("0"));
        BlockingQueue<String> rec = new LinkedBlockingQueue<>(), per = new LinkedBlockingQueue<>();
        Watcher recW = (WatchedEvent e) -> rec.add(e.getType() + " " + rel(e.getPath(), base));
        Watcher perW = (WatchedEvent e) -> per.add(e.getType() + " " + rel(e.getPath(), base));
        c2.watchers().add().withMode(AddWatchMode.PERSISTENT_RECURSIVE).usingWatcher(recW).forPath(base);
        c3.watchers().add().withMode(AddWatchMode.PERSISTENT).usingWatcher(perW).forPath(base);

        c1.setData().forPath(base, b("1"));
        want(rec, "NodeDataChanged /");
        want(per, "NodeDataChanged /");
        c1.setData().forPath(base, b("2"));  // still registered: persistent
        want(rec, "NodeDataChanged /");
        want(per, "NodeDataChanged /");
        c1.create().forPath(base + "/k", b("k"));
        want(rec, "NodeCreated /k");
        want(per, "NodeChildrenChanged /");
        c1.create().forPath(base + "/k/deep", b("d"));
        want(rec, "NodeCreated /k/deep");
        c1.setData().forPath(base + "/k/deep", b("d2"));
        want(rec, "NodeDataChanged /k/deep");
        c1.delete().forPath(base + "/k/deep");
        want(rec, "NodeDeleted /k/deep");
        c1.delete().forPath(base + "/k");
        want(rec, "NodeDeleted /k");
        want(per, "NodeChildrenChanged /");
        Thread.sleep(200);
        check(per.isEmpty(), "persistent (non-recursive) watch saw nothing below its children, got " + per);
        check(rec.isEmpty(), "no extra recursive events, got " + rec);
        step("PERSISTENT and PERSISTENT_RECURSIVE fire repeatedly without re-registering");

        // removeWatches of the recursive watcher (client c2); c3's persistent watch stays.
        c2.watchers().remove(recW).ofType(Watcher.WatcherType.Any).forPath(base);
        c1.setData().forPath(base, b("3"));
        want(per, "NodeDataChanged /");
        String stray = rec.poll(300, TimeUnit.MILLISECONDS);
        check(stray == null || stray.startsWith("PersistentWatchRemoved"),
                "removed recursive watcher got no data event, got " + stray);
        step("removeWatches on a persistent recursive watch");
    }

    static String rel(String p, String base) {
        if (p == null) return "null";
        String r = p.substring(base.length());
        return r.isEmpty() ? "/" : r;
    }

    static void want(BlockingQueue<String> q, String want) throws Exception {
        String got = q.poll(WAIT_S, TimeUnit.SECONDS);
        check(want.equals(got), "expected watch event '" + want + "', got '" + got + "'");
    }

    // -- PersistentNode, create2, containers ------------------------------------

    static void persistentNode(String root) throws Exception {
        CuratorFramework c1 = client(), c2 = client();
        String parent = root + "/pn/group";
        String path = parent + "/member";
        PersistentNode pn = new PersistentNode(c1, CreateMode.EPHEMERAL, false, path, b("v1"));
        pn.start();
        try {
            check(pn.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS), "initial create");
            check(pn.getActualPath().equals(path), "actual path " + pn.getActualPath());
            Stat st = new Stat();
            byte[] d = c2.getData().storingStatIn(st).forPath(path);
            check(s(d).equals("v1"), "data v1");
            long sid = c1.getZookeeperClient().getZooKeeper().getSessionId();
            check(st.getEphemeralOwner() == sid, "ephemeral owned by c1's session");
            // Parents were made with creatingParentContainersIfNeeded: containers
            // (reaped at the end once empty); clients see ephemeralOwner 0.
            Stat ps = c2.checkExists().forPath(parent);
            check(ps != null && ps.getEphemeralOwner() == CONTAINER_OWNER_SEEN,
                    "container parent's ephemeralOwner as seen by clients is 0, got "
                            + (ps == null ? "none" : Long.toHexString(ps.getEphemeralOwner())));
            step("ephemeral created under container parents");

            c2.delete().forPath(path);
            waitFor(() -> c2.checkExists().forPath(path) != null, "PersistentNode re-creates the deleted node");
            check(s(c2.getData().forPath(path)).equals("v1"), "re-created with v1");
            step("re-created after a delete by another session");

            pn.setData(b("v2"));
            waitFor(() -> s(c2.getData().forPath(path)).equals("v2"), "setData v2 reaches the node");
            step("setData");
        } finally {
            pn.close();
        }
        check(c2.checkExists().forPath(path) == null, "node gone after close");

        // A protected ephemeral-sequential PersistentNode.
        PersistentNode seq = new PersistentNode(c1, CreateMode.EPHEMERAL_SEQUENTIAL, true, parent + "/s-", b("q"));
        seq.start();
        try {
            check(seq.waitForInitialCreate(WAIT_S, TimeUnit.SECONDS), "sequential initial create");
            String ap = seq.getActualPath();
            String name = ap.substring(parent.length() + 1);
            check(name.startsWith("_c_") && name.matches("_c_[0-9a-f-]{36}-s-\\d{10}"),
                    "protected sequential name, got " + name);
            step("protected sequential " + name.replaceAll("[0-9a-f-]{36}", "<uuid>").replaceAll("\\d{10}$", "<seq>"));
        } finally {
            seq.close();
        }

        // create2: the Stat of the created node comes back with the create.
        Stat cs = new Stat();
        String p2 = c1.create().creatingParentContainersIfNeeded().storingStatIn(cs)
                .forPath(root + "/c2/x/y", b("hello"));
        check(p2.equals(root + "/c2/x/y"), "create2 path");
        check(cs.getCzxid() > 0 && cs.getCzxid() == cs.getMzxid() && cs.getVersion() == 0
                && cs.getDataLength() == 5 && cs.getNumChildren() == 0 && cs.getEphemeralOwner() == 0,
                "create2 stat " + cs);
        Stat fetched = c2.checkExists().forPath(p2);
        check(fetched.equals(cs), "create2 stat equals exists stat");
        check(c2.checkExists().forPath(root + "/c2/x").getEphemeralOwner() == CONTAINER_OWNER_SEEN,
                "container parent's ephemeralOwner as seen by clients is 0");
        step("create2 returns the new node's Stat");

        // Container reaping: empty containers that had children go away
        // (znode.container.checkIntervalMs is set low by the test).
        c1.delete().forPath(p2);
        waitFor(() -> c2.checkExists().forPath(parent) == null, "empty container " + parent + " reaped");
        waitFor(() -> c2.checkExists().forPath(root + "/c2/x") == null, "empty container /c2/x reaped");
        waitFor(() -> c2.checkExists().forPath(root + "/c2") == null, "empty container /c2 reaped (cascade)");
        check(c2.checkExists().forPath(root) != null, "the plain persistent root stays");
        step("empty containers reaped");
    }

    public static void main(String[] args) {
        if (args.length != 2) {
            System.err.println("usage: CuratorRecipes HOST:PORT RECIPE");
            System.exit(2);
        }
        connect = args[0];
        String recipe = args[1];
        String root = "/curator-" + recipe + "-" + System.nanoTime();
        int rc = 0;
        try {
            CuratorFramework admin = client();
            admin.create().forPath(root);
            switch (recipe) {
                case "leaderlatch": leaderLatch(root); break;
                case "mutex": mutex(root); break;
                case "atomiclong": atomicLong(root); break;
                case "curatorcache": curatorCache(root); break;
                case "addwatch": addWatch(root); break;
                case "persistentnode": persistentNode(root); break;
                default: throw new Failure("unknown recipe " + recipe);
            }
            System.out.println("PASS " + recipe);
        } catch (Throwable t) {
            System.out.println("FAIL " + recipe + ": " + t);
            t.printStackTrace(System.out);
            rc = 1;
        } finally {
            for (CuratorFramework c : clients) {
                try { c.close(); } catch (Throwable ignored) { }
            }
        }
        System.out.flush();
        // Curator/ZooKeeper leave non-daemon threads behind on failures.
        Runtime.getRuntime().halt(rc);
    }
}
