// Kafka broker emulation on Apache ZooKeeper's own Java client (Debian's
// zookeeper.jar), for tests/compat/test_kafka.py.
//
// One JVM runs several "brokers", each with its own ZooKeeper session, its own
// event thread (like Kafka's ControllerEventManager) and the znode traffic of a
// Kafka 2.8 or 1.1 broker and controller as Kafka's KafkaZkClient issues it
// (apache/kafka, kafka.zk.KafkaZkClient). Admin commands (kafka-topics,
// kafka-configs, kafka-reassign-partitions with --zookeeper) open their own
// session each, like the command-line tools.
//
// Protocol: one command per line on stdin, "<seq> <command> <args...>"; every
// command gets one reply line {"reply":<seq>,"ok":true|false,...} on stdout.
// Asynchronous happenings are lines {"ev":"<kind>",...} on stdout (watch
// events, elections, controller actions). Usage: KafkaEmu <host:port,...> [chroot]
//
// Secure mode (-Dkafkaemu.secure=true) is a broker with zookeeper.set.acl=true:
// every znode is created with Kafka's ACLs (kafka.zk.ZkData.defaultAcls: the
// creator's identity ALL plus world READ, no world READ under the sensitive
// roots, /consumers open in 2.8), as the sessions' SASL login (a JAAS `Client`
// section through -Djava.security.auth.login.config) makes the creator a
// `sasl:` identity. Admin sessions use the same JAAS section, as the tools do.
//
// Commands:
//   start <id> <2.8|1.1> <sessionTimeoutMs> [proxy]  start-up; proxy = connect
//                                          through a loopback TCP proxy per server
//   register <id>                          re-run the checked registration (same session)
//   stop <id>                              close the broker's session (ephemerals go)
//   partition <id> / heal <id>             cut / restore the broker's proxied network
//   state <id>                             the broker's view (epochs, controller, ...)
//   admin <2.8|1.1> create <t> <parts> <rf> | list | describe <t> | alter <t> <parts>
//         | add-config <t> k=v[,k=v] | delete-config <t> k[,k] | delete <t>
//         (a config entity <type>/<name>, e.g. users/alice, instead of a topic <t>)
//         | reassign <t> <p> <r1,r2,...>
//   quit

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.UUID;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;
import org.apache.zookeeper.AsyncCallback;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.KeeperException.Code;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.Stat;

public class KafkaEmu {
    static final ObjectMapper M = new ObjectMapper();
    static final long CALL_TIMEOUT_S = 20;
    static String servers;
    static String chroot = "/kafka01";
    static final Map<Integer, Broker> BROKERS = new ConcurrentHashMap<>();
    /** zookeeper.set.acl=true: Kafka's secure ACLs on every znode created. */
    static final boolean SECURE = Boolean.getBoolean("kafkaemu.secure");
    /** ZkData.SensitiveRootPaths (1.1 and 2.8): no world READ under these. */
    static final List<String> SENSITIVE_ROOTS = List.of("/config/users", "/config/brokers",
            "/delegation_token/tokens");

    // ---------------------------------------------------------------- output

    static synchronized void emit(ObjectNode o) {
        System.out.println(o.toString());
        System.out.flush();
    }

    static ObjectNode obj(Object... kv) {
        ObjectNode o = M.createObjectNode();
        for (int i = 0; i + 1 < kv.length; i += 2) {
            o.set((String) kv[i], M.valueToTree(kv[i + 1]));
        }
        return o;
    }

    static void ev(String kind, Object... kv) {
        ObjectNode o = obj(kv);
        ObjectNode out = obj("ev", kind);
        out.setAll(o);
        emit(out);
    }

    static byte[] json(Object o) {
        try {
            return M.writeValueAsBytes(o);
        } catch (IOException e) {
            throw new RuntimeException(e);
        }
    }

    static JsonNode parse(byte[] d) throws IOException {
        return d == null ? null : M.readTree(d);
    }

    static String parent(String p) {
        int i = p.lastIndexOf('/');
        return i <= 0 ? "/" : p.substring(0, i);
    }

    static List<Integer> intList(JsonNode a) {
        List<Integer> l = new ArrayList<>();
        for (JsonNode n : a) l.add(n.asInt());
        return l;
    }

    static List<Integer> codes(KeeperException e) {
        List<Integer> l = new ArrayList<>();
        if (e.getResults() != null) {
            for (OpResult r : e.getResults()) {
                l.add(r instanceof OpResult.ErrorResult ? ((OpResult.ErrorResult) r).getErr() : 0);
            }
        }
        return l;
    }

    // ------------------------------------------------------------- sessions

    static ZooKeeper connect(String connect, int timeoutMs, Watcher w) throws Exception {
        CountDownLatch up = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(connect, timeoutMs, e -> {
            if (e.getType() == Watcher.Event.EventType.None
                    && e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                up.countDown();
            }
            if (w != null) w.process(e);
        });
        if (!up.await(15, TimeUnit.SECONDS)) {
            zk.close();
            throw new IOException("no session within 15 s: " + connect);
        }
        return zk;
    }

    /** ZkData.defaultAcls(isSecure, path) of Kafka 2.8 (v28) or 1.1, for a chroot-relative path. */
    static List<ACL> acls(String path, boolean v28) {
        // 2.8 keeps the old consumer path open: different consumers write under it.
        if (!SECURE || (v28 && path.equals("/consumers"))) return ZooDefs.Ids.OPEN_ACL_UNSAFE;
        List<ACL> l = new ArrayList<>(ZooDefs.Ids.CREATOR_ALL_ACL);
        if (SENSITIVE_ROOTS.stream().noneMatch(path::startsWith)) l.addAll(ZooDefs.Ids.READ_ACL_UNSAFE);
        return l;
    }

    /** createRecursive: create, make parents on NoNode, NodeExists ignored if asked. */
    static void createRecursive(ZooKeeper zk, boolean v28, String path, byte[] data, boolean ignoreExists)
            throws KeeperException, InterruptedException {
        try {
            zk.create(path, data, acls(path, v28), CreateMode.PERSISTENT);
        } catch (KeeperException.NoNodeException e) {
            createRecursive(zk, v28, parent(path), null, true);
            createRecursive(zk, v28, path, data, ignoreExists);
        } catch (KeeperException.NodeExistsException e) {
            if (!ignoreExists) throw e;
        }
    }

    // ------------------------------------------------------------- payloads

    static ObjectNode brokerPayload(int id, boolean v28, int port) {
        ObjectNode o = M.createObjectNode();
        if (v28) o.set("features", M.createObjectNode());
        o.set("listener_security_protocol_map", obj("PLAINTEXT", "PLAINTEXT"));
        o.set("endpoints", M.valueToTree(List.of("PLAINTEXT://host" + id + ":" + port)));
        o.put("jmx_port", -1);
        o.put("host", "host" + id);
        o.put("timestamp", Long.toString(System.currentTimeMillis()));
        o.put("port", port);
        o.put("version", v28 ? 5 : 4);
        return o;
    }

    static ObjectNode topicPayload(boolean v28, Map<Integer, List<Integer>> assignment) {
        ObjectNode o = M.createObjectNode();
        o.put("version", v28 ? 3 : 1);
        ObjectNode parts = M.createObjectNode();
        for (Map.Entry<Integer, List<Integer>> e : assignment.entrySet()) {
            parts.set(Integer.toString(e.getKey()), M.valueToTree(e.getValue()));
        }
        o.set("partitions", parts);
        if (v28) {
            o.set("adding_replicas", M.createObjectNode());
            o.set("removing_replicas", M.createObjectNode());
        }
        return o;
    }

    static Map<Integer, List<Integer>> parseAssignment(byte[] d) throws IOException {
        Map<Integer, List<Integer>> a = new TreeMap<>();
        JsonNode parts = parse(d).get("partitions");
        Iterator<Map.Entry<String, JsonNode>> it = parts.fields();
        while (it.hasNext()) {
            Map.Entry<String, JsonNode> e = it.next();
            a.put(Integer.parseInt(e.getKey()), intList(e.getValue()));
        }
        return a;
    }

    static ObjectNode statePayload(int ctlEpoch, int leader, int leaderEpoch, List<Integer> isr) {
        return obj("controller_epoch", ctlEpoch, "leader", leader, "version", 1,
                "leader_epoch", leaderEpoch, "isr", isr);
    }

    // ---------------------------------------------------------------- proxy

    /** A loopback TCP forwarder that can cut its connections, like a partition. */
    static final class Proxy implements Runnable {
        final ServerSocket ss;
        final String host;
        final int port;
        volatile boolean blocked;
        final Set<Socket> open = ConcurrentHashMap.newKeySet();

        Proxy(String target) throws IOException {
            String[] hp = target.split(":");
            host = hp[0];
            port = Integer.parseInt(hp[1]);
            ss = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"));
            Thread t = new Thread(this, "proxy-" + ss.getLocalPort());
            t.setDaemon(true);
            t.start();
        }

        String addr() {
            return "127.0.0.1:" + ss.getLocalPort();
        }

        public void run() {
            while (!ss.isClosed()) {
                try {
                    Socket c = ss.accept();
                    if (blocked) {
                        c.close();
                        continue;
                    }
                    Socket s = new Socket();
                    s.connect(new InetSocketAddress(host, port), 5000);
                    open.add(c);
                    open.add(s);
                    pump(c, s);
                    pump(s, c);
                } catch (IOException e) {
                    // closed or refused: the client sees a dropped connection
                }
            }
        }

        void pump(Socket from, Socket to) {
            Thread t = new Thread(() -> {
                byte[] buf = new byte[65536];
                try (InputStream in = from.getInputStream(); OutputStream out = to.getOutputStream()) {
                    int n;
                    while ((n = in.read(buf)) > 0) out.write(buf, 0, n);
                } catch (IOException e) {
                    // fall through
                }
                closeQuietly(from);
                closeQuietly(to);
            }, "pump");
            t.setDaemon(true);
            t.start();
        }

        void cut() {
            blocked = true;
            for (Socket s : open) closeQuietly(s);
            open.clear();
        }

        void heal() {
            blocked = false;
        }

        static void closeQuietly(Socket s) {
            try {
                s.close();
            } catch (IOException e) {
                // ignore
            }
        }
    }

    // --------------------------------------------------------------- broker

    static final class ControllerMoved extends Exception {
        ControllerMoved(String m) {
            super(m);
        }
    }

    interface Task {
        void run() throws Exception;
    }

    static final class Broker {
        final int id;
        final boolean v28;
        final int timeoutMs;
        final String connect;
        final List<Proxy> proxies = new ArrayList<>();
        final LinkedBlockingQueue<Task> queue = new LinkedBlockingQueue<>();
        final LinkedBlockingQueue<Task> featureQueue = new LinkedBlockingQueue<>();
        volatile ZooKeeper zk;
        volatile long session;
        volatile long brokerEpoch = -1;
        volatile int generation;
        volatile boolean stopped;
        String clusterId;
        // controller state
        volatile boolean isController;
        volatile int activeController = -1;
        volatile int ctlEpoch = -1;
        volatile int ctlEpochZkVersion = -1;
        final Map<Integer, Long> live = new TreeMap<>();
        final Map<String, Map<Integer, List<Integer>>> assignments = new TreeMap<>();
        final Map<String, ObjectNode> states = new TreeMap<>(); // "t/p" -> state json
        final Map<String, Integer> stateVersions = new TreeMap<>();
        long lastConfigChange = -1;
        final Object featureLock = new Object();
        int featureVersion = -1;
        ObjectNode pidBlock;

        Broker(int id, boolean v28, int timeoutMs, boolean proxied) throws IOException {
            this.id = id;
            this.v28 = v28;
            this.timeoutMs = timeoutMs;
            String hosts = servers;
            if (proxied) {
                List<String> addrs = new ArrayList<>();
                for (String s : servers.split(",")) {
                    Proxy p = new Proxy(s);
                    proxies.add(p);
                    addrs.add(p.addr());
                }
                hosts = String.join(",", addrs);
            }
            connect = hosts + chroot;
            Thread t = new Thread(() -> loop(queue), "broker-" + id);
            t.setDaemon(true);
            t.start();
            Thread f = new Thread(() -> loop(featureQueue), "feature-" + id);
            f.setDaemon(true);
            f.start();
        }

        void loop(LinkedBlockingQueue<Task> q) {
            while (true) {
                Task t;
                try {
                    t = q.take();
                } catch (InterruptedException e) {
                    return;
                }
                if (stopped) continue;
                try {
                    t.run();
                } catch (ControllerMoved e) {
                    ev("controller-moved", "broker", id, "message", e.getMessage());
                    resign();
                } catch (Throwable e) {
                    if (!stopped) ev("error", "broker", id, "message", e.toString());
                }
            }
        }

        <T> T call(java.util.concurrent.Callable<T> c) throws Exception {
            CompletableFuture<T> f = new CompletableFuture<>();
            queue.add(() -> {
                try {
                    f.complete(c.call());
                } catch (Throwable e) {
                    f.completeExceptionally(e);
                }
            });
            return f.get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
        }

        // The default watcher of one session: every event is reported; node
        // events become tasks on the broker's event thread.
        Watcher watcher(int gen) {
            return e -> {
                if (stopped || gen != generation) return;
                ev("watch", "broker", id, "session", session, "type", e.getType().name(),
                        "path", e.getPath(), "state", e.getState().name());
                if (e.getType() == Watcher.Event.EventType.None) {
                    if (e.getState() == Watcher.Event.KeeperState.Expired) {
                        queue.add(this::onSessionExpired);
                    }
                    return;
                }
                String p = e.getPath();
                Watcher.Event.EventType t = e.getType();
                if (p.equals("/feature")) {
                    featureQueue.add(this::readFeature);
                } else if (p.equals("/controller")) {
                    if (t == Watcher.Event.EventType.NodeDeleted) {
                        queue.add(() -> {
                            maybeResign();
                            elect();
                        });
                    } else {
                        queue.add(this::maybeResign);
                    }
                } else if (p.equals("/config/changes")) {
                    queue.add(this::processConfigChanges);
                } else if (p.equals("/brokers/ids") && t == Watcher.Event.EventType.NodeChildrenChanged) {
                    queue.add(this::onBrokerChange);
                } else if (p.startsWith("/brokers/ids/")) {
                    queue.add(() -> onBrokerModification(p));
                } else if (p.equals("/brokers/topics") && t == Watcher.Event.EventType.NodeChildrenChanged) {
                    queue.add(this::onTopicChange);
                } else if (p.startsWith("/brokers/topics/") && t == Watcher.Event.EventType.NodeDataChanged) {
                    queue.add(() -> onPartitionModification(p.substring("/brokers/topics/".length())));
                } else if (p.equals("/admin/delete_topics")) {
                    queue.add(this::onTopicDeletion);
                } else if (p.equals("/admin/reassign_partitions")
                        && t == Watcher.Event.EventType.NodeCreated) {
                    queue.add(this::onReassignment);
                } else if (p.equals("/isr_change_notification") || p.equals("/log_dir_event_notification")) {
                    queue.add(() -> {
                        if (isController) zk.getChildren(p, true);
                    });
                }
            };
        }

        // ---------------------------------------------------------- start-up

        ObjectNode startup() throws Exception {
            ensureChroot();
            openSession();
            createTopLevelPaths();
            if (v28) initFeatureListener();
            clusterId = getOrCreateClusterId();
            brokerEpoch = register();
            elect();
            producerIdBlock();
            processConfigChanges();
            return obj("broker", id, "session", session, "broker_epoch", brokerEpoch,
                    "cluster_id", clusterId, "controller", isController,
                    "active_controller", activeController, "controller_epoch", ctlEpoch,
                    "controller_epoch_zk_version", ctlEpochZkVersion, "pid_block", pidBlock);
        }

        void ensureChroot() throws Exception {
            // A session without the chroot creates it; 3.x checks exists first.
            ZooKeeper z = connect(servers, timeoutMs, null);
            try {
                if (z.exists(chroot, false) == null) {
                    try {
                        z.create(chroot, null, acls(chroot, v28), CreateMode.PERSISTENT);
                    } catch (KeeperException.NodeExistsException e) {
                        // another broker won
                    }
                }
            } finally {
                z.close();
            }
        }

        void openSession() throws Exception {
            int gen = ++generation;
            zk = connect(connect, timeoutMs, watcher(gen));
            session = zk.getSessionId();
            ev("session", "broker", id, "session", session, "timeout", zk.getSessionTimeout());
        }

        void createTopLevelPaths() throws Exception {
            List<String> paths = new ArrayList<>(List.of("/consumers", "/brokers/ids", "/brokers/topics",
                    "/config/changes", "/admin/delete_topics", "/brokers/seqid", "/isr_change_notification",
                    "/latest_producer_id_block", "/log_dir_event_notification", "/config/topics",
                    "/config/clients", "/config/users", "/config/brokers"));
            if (v28) paths.add("/config/ips");
            for (String p : paths) createRecursive(zk, v28, p, null, true);
        }

        void initFeatureListener() throws Exception {
            zk.exists("/feature", true);
            readFeature();
        }

        void readFeature() throws Exception {
            Stat st = new Stat();
            try {
                zk.getData("/feature", true, st);
            } catch (KeeperException.NoNodeException e) {
                zk.exists("/feature", true);
                return;
            }
            synchronized (featureLock) {
                featureVersion = st.getVersion();
                featureLock.notifyAll();
            }
            ev("feature", "broker", id, "version", st.getVersion());
        }

        String getOrCreateClusterId() throws Exception {
            try {
                return parse(zk.getData("/cluster/id", false, null)).get("id").asText();
            } catch (KeeperException.NoNodeException e) {
                UUID u = UUID.randomUUID();
                ByteBuffer b = ByteBuffer.allocate(16);
                b.putLong(u.getMostSignificantBits()).putLong(u.getLeastSignificantBits());
                String id = Base64.getUrlEncoder().withoutPadding().encodeToString(b.array());
                try {
                    createRecursive(zk, v28, "/cluster/id", json(obj("version", "1", "id", id)), false);
                    return id;
                } catch (KeeperException.NodeExistsException x) {
                    return parse(zk.getData("/cluster/id", false, null)).get("id").asText();
                }
            }
        }

        /** Checked ephemeral registration; returns the broker epoch (czxid). */
        long register() throws Exception {
            String path = "/brokers/ids/" + id;
            byte[] payload = json(brokerPayload(id, v28, 9092));
            long epoch;
            try {
                if (v28) {
                    List<OpResult> r = zk.multi(List.of(
                            Op.create(path, null, acls(path, v28), CreateMode.EPHEMERAL),
                            Op.setData(path, payload, 0)));
                    epoch = ((OpResult.SetDataResult) r.get(1)).getStat().getCzxid();
                } else {
                    zk.create(path, payload, acls(path, v28), CreateMode.EPHEMERAL);
                    epoch = -1;
                }
                ev("registered", "broker", id, "session", session, "broker_epoch", epoch);
                return epoch;
            } catch (KeeperException.NodeExistsException e) {
                Stat st = new Stat();
                zk.getData(path, false, st);
                ev("register-node-exists", "broker", id, "codes", codes(e),
                        "owner", st.getEphemeralOwner(), "session", session);
                if (st.getEphemeralOwner() == zk.getSessionId()) return st.getCzxid();
                throw new IOException("NODEEXISTS: " + path + " is owned by session "
                        + st.getEphemeralOwner() + ", not " + zk.getSessionId());
            }
        }

        void producerIdBlock() throws Exception {
            for (int attempt = 0; attempt < 10; attempt++) {
                Stat st = new Stat();
                byte[] d = zk.getData("/latest_producer_id_block", false, st);
                long start = d == null ? 0 : parse(d).get("block_end").asLong() + 1;
                ObjectNode b = obj("version", 1, "broker", id, "block_start", Long.toString(start),
                        "block_end", Long.toString(start + 999));
                try {
                    zk.setData("/latest_producer_id_block", json(b), st.getVersion());
                    pidBlock = b;
                    return;
                } catch (KeeperException.BadVersionException e) {
                    ev("pid-block-retry", "broker", id);
                }
            }
            throw new IOException("no producer id block after 10 attempts");
        }

        // ---------------------------------------------------------- election

        int readControllerId(boolean watch) throws Exception {
            try {
                return parse(zk.getData("/controller", watch, null)).get("brokerid").asInt();
            } catch (KeeperException.NoNodeException e) {
                return -1;
            }
        }

        void elect() throws Exception {
            if (stopped) return;
            Stat s = zk.exists("/controller", true);
            activeController = s == null ? -1 : readControllerId(true);
            if (activeController != -1) {
                ev("controller-known", "broker", id, "controller", activeController);
                return;
            }
            byte[] payload = json(obj("version", 1, "brokerid", id,
                    "timestamp", Long.toString(System.currentTimeMillis())));
            if (v28) {
                int curEpoch;
                int curVersion;
                Stat st = new Stat();
                try {
                    curEpoch = Integer.parseInt(new String(zk.getData("/controller_epoch", false, st),
                            StandardCharsets.UTF_8));
                    curVersion = st.getVersion();
                } catch (KeeperException.NoNodeException e) {
                    try {
                        zk.create("/controller_epoch", "0".getBytes(StandardCharsets.UTF_8),
                                acls("/controller_epoch", v28), CreateMode.PERSISTENT);
                        curEpoch = 0;
                        curVersion = 0;
                    } catch (KeeperException.NodeExistsException x) {
                        curEpoch = Integer.parseInt(new String(zk.getData("/controller_epoch", false, st),
                                StandardCharsets.UTF_8));
                        curVersion = st.getVersion();
                    }
                }
                int newEpoch = curEpoch + 1;
                try {
                    List<OpResult> r = zk.multi(List.of(
                            Op.create("/controller", payload, acls("/controller", v28), CreateMode.EPHEMERAL),
                            Op.setData("/controller_epoch", Integer.toString(newEpoch)
                                    .getBytes(StandardCharsets.UTF_8), curVersion)));
                    Stat es = ((OpResult.SetDataResult) r.get(1)).getStat();
                    OpResult.CreateResult cr = (OpResult.CreateResult) r.get(0);
                    ev("election-multi", "broker", id, "created", cr.getPath(),
                            "epoch_mzxid", es.getMzxid());
                    onControllerFailover(newEpoch, es.getVersion());
                } catch (KeeperException.NodeExistsException | KeeperException.BadVersionException e) {
                    // checkControllerAndEpoch
                    Stat cs = new Stat();
                    int owner;
                    try {
                        owner = parse(zk.getData("/controller", false, cs)).get("brokerid").asInt();
                    } catch (KeeperException.NoNodeException x) {
                        owner = -1;
                    }
                    ev("election-lost", "broker", id, "code", e.code().intValue(), "codes", codes(e),
                            "controller", owner, "expected_version", curVersion);
                    maybeResign();
                }
            } else {
                try {
                    zk.create("/controller", payload, acls("/controller", v28), CreateMode.EPHEMERAL);
                } catch (KeeperException.NodeExistsException e) {
                    ev("election-lost", "broker", id, "code", e.code().intValue(), "codes", codes(e),
                            "controller", readControllerId(false), "expected_version", -1);
                    maybeResign();
                    return;
                }
                // 1.1: readControllerEpochFromZooKeeper, then incrementControllerEpoch
                int epoch = 0;
                int version = 0;
                Stat st = new Stat();
                try {
                    epoch = Integer.parseInt(new String(zk.getData("/controller_epoch", false, st),
                            StandardCharsets.UTF_8));
                    version = st.getVersion();
                } catch (KeeperException.NoNodeException e) {
                    // first controller ever
                }
                try {
                    Stat ns = zk.setData("/controller_epoch",
                            Integer.toString(epoch + 1).getBytes(StandardCharsets.UTF_8), version);
                    onControllerFailover(epoch + 1, ns.getVersion());
                } catch (KeeperException.NoNodeException e) {
                    zk.create("/controller_epoch", "1".getBytes(StandardCharsets.UTF_8),
                            acls("/controller_epoch", v28), CreateMode.PERSISTENT);
                    onControllerFailover(1, 0);
                } catch (KeeperException.BadVersionException e) {
                    throw new ControllerMoved("controller_epoch moved: " + e);
                }
            }
        }

        void maybeResign() throws Exception {
            boolean was = isController;
            Stat s = zk.exists("/controller", true);
            activeController = s == null ? -1 : readControllerId(true);
            if (was && activeController != id) resign();
        }

        void resign() {
            if (isController) ev("resigned", "broker", id, "epoch", ctlEpoch);
            isController = false;
            live.clear();
            assignments.clear();
            states.clear();
            stateVersions.clear();
        }

        // ---------------------------------------------------- fenced writes

        OpResult fenced(Op op) throws Exception {
            if (!v28) {
                switch (op.getType()) {
                    case ZooDefs.OpCode.create: {
                        org.apache.zookeeper.proto.CreateRequest r =
                                (org.apache.zookeeper.proto.CreateRequest) op.toRequestRecord();
                        return new OpResult.CreateResult(zk.create(op.getPath(), r.getData(),
                                r.getAcl(), CreateMode.PERSISTENT));
                    }
                    case ZooDefs.OpCode.setData: {
                        Op.SetData sd = (Op.SetData) op;
                        org.apache.zookeeper.proto.SetDataRequest r =
                                (org.apache.zookeeper.proto.SetDataRequest) op.toRequestRecord();
                        return new OpResult.SetDataResult(zk.setData(sd.getPath(), r.getData(), r.getVersion()));
                    }
                    case ZooDefs.OpCode.delete: {
                        org.apache.zookeeper.proto.DeleteRequest r =
                                (org.apache.zookeeper.proto.DeleteRequest) op.toRequestRecord();
                        zk.delete(op.getPath(), r.getVersion());
                        return new OpResult.DeleteResult();
                    }
                    default:
                        throw new IllegalArgumentException("op " + op.getType());
                }
            }
            try {
                List<OpResult> r = zk.multi(List.of(Op.check("/controller_epoch", ctlEpochZkVersion), op));
                return r.get(1);
            } catch (KeeperException e) {
                List<Integer> c = codes(e);
                if (!c.isEmpty() && c.get(0) == Code.BADVERSION.intValue()) {
                    throw new ControllerMoved("fenced " + op.getPath() + ": controller_epoch version is not "
                            + ctlEpochZkVersion + " " + c);
                }
                throw e;
            }
        }

        Op createOp(String path, byte[] data) {
            return Op.create(path, data, acls(path, v28), CreateMode.PERSISTENT);
        }

        void fencedCreateIgnoreExists(String path, byte[] data) throws Exception {
            try {
                fenced(createOp(path, data));
            } catch (KeeperException.NodeExistsException e) {
                // already there
            }
        }

        void fencedDelete(String path) throws Exception {
            try {
                fenced(Op.delete(path, -1));
            } catch (KeeperException.NoNodeException e) {
                // already gone
            }
        }

        void fencedDeleteRecursive(String path) throws Exception {
            List<String> children;
            try {
                children = zk.getChildren(path, false);
            } catch (KeeperException.NoNodeException e) {
                return;
            }
            Collections.sort(children);
            for (String c : children) fencedDeleteRecursive(path + "/" + c);
            fencedDelete(path);
        }

        /** Pipelined requests (Kafka keeps up to 10 in flight): fenced multis, async. */
        List<Object> pipelinedFenced(List<Op> ops) throws Exception {
            int n = ops.size();
            Object[] results = new Object[n];
            List<Integer> order = Collections.synchronizedList(new ArrayList<>());
            CountDownLatch done = new CountDownLatch(n);
            for (int i = 0; i < n; i++) {
                final int idx = i;
                AsyncCallback.MultiCallback cb = (rc, path, ctx, opResults) -> {
                    order.add(idx);
                    results[idx] = rc == 0 ? opResults.get(opResults.size() - 1) : (Object) Integer.valueOf(rc);
                    if (rc != 0 && opResults != null && !opResults.isEmpty()) {
                        results[idx] = opResults.stream().map(r -> r instanceof OpResult.ErrorResult
                                ? ((OpResult.ErrorResult) r).getErr() : 0).collect(java.util.stream.Collectors.toList());
                    }
                    done.countDown();
                };
                if (v28) {
                    zk.multi(List.of(Op.check("/controller_epoch", ctlEpochZkVersion), ops.get(idx)), cb, null);
                } else {
                    zk.multi(List.of(ops.get(idx)), cb, null);
                }
            }
            if (!done.await(CALL_TIMEOUT_S, TimeUnit.SECONDS)) throw new IOException("pipelined requests timed out");
            List<Integer> sorted = new ArrayList<>(order);
            Collections.sort(sorted);
            if (!sorted.equals(order)) {
                ev("response-order", "broker", id, "order", order);
            }
            List<Object> out = new ArrayList<>();
            Collections.addAll(out, results);
            return out;
        }

        // ---------------------------------------------------- the controller

        void onControllerFailover(int epoch, int epochZkVersion) throws Exception {
            isController = true;
            activeController = id;
            ctlEpoch = epoch;
            ctlEpochZkVersion = epochZkVersion;
            ev("elected", "broker", id, "session", session, "epoch", epoch, "epoch_zk_version", epochZkVersion);
            if (v28) enableFeatureVersioning();
            // child watches (Kafka registers the handlers, then reads with watch)
            zk.getChildren("/log_dir_event_notification", true);
            zk.getChildren("/isr_change_notification", true);
            readLiveBrokers();
            for (int b : live.keySet()) zk.exists("/brokers/ids/" + b, true);
            List<String> topics = zk.getChildren("/brokers/topics", true, null);
            Collections.sort(topics);
            for (String t : topics) {
                assignments.put(t, parseAssignment(zk.getData("/brokers/topics/" + t, true, null)));
            }
            readPartitionStates();
            zk.exists("/admin/preferred_replica_election", true);
            boolean reassignPending = zk.exists("/admin/reassign_partitions", true) != null;
            // partitions whose leader is gone get a new leader
            electOfflineLeaders(Set.of(), "failover");
            ev("controller-ready", "broker", id, "epoch", epoch, "live", new ArrayList<>(live.keySet()),
                    "topics", new ArrayList<>(assignments.keySet()));
            onTopicDeletion();
            if (reassignPending) onReassignment();
        }

        void enableFeatureVersioning() throws Exception {
            Stat st = new Stat();
            int version;
            try {
                zk.getData("/feature", true, st);
                version = st.getVersion();
            } catch (KeeperException.NoNodeException e) {
                zk.create("/feature", json(obj("features", M.createObjectNode(), "version", 1, "status", 1)),
                        acls("/feature", v28), CreateMode.PERSISTENT);
                zk.getData("/feature", true, st);
                version = st.getVersion();
            }
            // wait until this broker's own feature listener (exists watch) saw it
            long deadline = System.currentTimeMillis() + 10000;
            synchronized (featureLock) {
                while (featureVersion < version) {
                    long left = deadline - System.currentTimeMillis();
                    if (left <= 0) throw new IOException("feature cache never reached version " + version);
                    featureLock.wait(left);
                }
            }
        }

        void readLiveBrokers() throws Exception {
            List<String> ids = zk.getChildren("/brokers/ids", true, null);
            live.clear();
            // pipelined getData of every registration
            Map<Integer, CompletableFuture<Stat>> fs = new TreeMap<>();
            for (String s : ids) {
                CompletableFuture<Stat> f = new CompletableFuture<>();
                fs.put(Integer.parseInt(s), f);
                zk.getData("/brokers/ids/" + s, false, (rc, path, ctx, data, stat) -> {
                    if (rc == 0) f.complete(stat);
                    else f.complete(null);
                }, null);
            }
            for (Map.Entry<Integer, CompletableFuture<Stat>> e : fs.entrySet()) {
                Stat st = e.getValue().get(CALL_TIMEOUT_S, TimeUnit.SECONDS);
                if (st != null) live.put(e.getKey(), st.getCzxid());
            }
        }

        void readPartitionStates() throws Exception {
            states.clear();
            stateVersions.clear();
            for (Map.Entry<String, Map<Integer, List<Integer>>> t : assignments.entrySet()) {
                for (int p : t.getValue().keySet()) {
                    String key = t.getKey() + "/" + p;
                    Stat st = new Stat();
                    try {
                        byte[] d = zk.getData(statePath(t.getKey(), p), false, st);
                        states.put(key, (ObjectNode) parse(d));
                        stateVersions.put(key, st.getVersion());
                    } catch (KeeperException.NoNodeException e) {
                        // not yet created
                    }
                }
            }
        }

        static String statePath(String t, int p) {
            return "/brokers/topics/" + t + "/partitions/" + p + "/state";
        }

        void onBrokerChange() throws Exception {
            if (!isController) return;
            Map<Integer, Long> before = new TreeMap<>(live);
            readLiveBrokers();
            List<Integer> added = new ArrayList<>();
            List<Integer> dead = new ArrayList<>();
            List<Integer> bounced = new ArrayList<>();
            for (Map.Entry<Integer, Long> e : live.entrySet()) {
                if (!before.containsKey(e.getKey())) added.add(e.getKey());
                else if (!before.get(e.getKey()).equals(e.getValue())) bounced.add(e.getKey());
            }
            for (int b : before.keySet()) if (!live.containsKey(b)) dead.add(b);
            for (int b : added) zk.exists("/brokers/ids/" + b, true);
            for (int b : bounced) zk.exists("/brokers/ids/" + b, true);
            ev("broker-change", "broker", id, "live", new ArrayList<>(live.keySet()), "epochs", live,
                    "added", added, "dead", dead, "bounced", bounced);
            if (!dead.isEmpty()) electOfflineLeaders(new TreeSet<>(dead), "broker-failure");
        }

        void onBrokerModification(String path) throws Exception {
            if (!isController) return;
            zk.exists(path, true);
        }

        /** New leader and ISR for partitions touched by dead brokers (epoch + 1, fenced). */
        void electOfflineLeaders(Set<Integer> dead, String why) throws Exception {
            List<String> changed = new ArrayList<>();
            for (Map.Entry<String, ObjectNode> e : new TreeMap<>(states).entrySet()) {
                ObjectNode s = e.getValue();
                int leader = s.get("leader").asInt();
                List<Integer> isr = intList(s.get("isr"));
                boolean leaderGone = leader != -1 && !live.containsKey(leader);
                boolean isrTouched = false;
                for (int b : isr) if (dead.contains(b)) isrTouched = true;
                if (!leaderGone && !isrTouched) continue;
                String[] tp = e.getKey().split("/");
                List<Integer> newIsr = new ArrayList<>();
                for (int b : isr) if (live.containsKey(b)) newIsr.add(b);
                int newLeader = leader;
                if (leaderGone) {
                    newLeader = -1;
                    for (int b : assignments.get(tp[0]).get(Integer.parseInt(tp[1]))) {
                        if (newIsr.contains(b)) {
                            newLeader = b;
                            break;
                        }
                    }
                }
                if (newIsr.isEmpty()) newIsr = isr;
                ObjectNode ns = statePayload(ctlEpoch, newLeader, s.get("leader_epoch").asInt() + 1, newIsr);
                OpResult r = fenced(Op.setData(statePath(tp[0], Integer.parseInt(tp[1])), json(ns),
                        stateVersions.get(e.getKey())));
                states.put(e.getKey(), ns);
                stateVersions.put(e.getKey(), ((OpResult.SetDataResult) r).getStat().getVersion());
                changed.add(e.getKey());
            }
            if (!changed.isEmpty()) ev("leaders-elected", "broker", id, "why", why, "partitions", changed);
        }

        void onTopicChange() throws Exception {
            if (!isController) return;
            List<String> topics = zk.getChildren("/brokers/topics", true, null);
            Collections.sort(topics);
            for (String t : new ArrayList<>(assignments.keySet())) {
                if (!topics.contains(t)) assignments.remove(t);
            }
            for (String t : topics) {
                if (assignments.containsKey(t)) continue;
                Map<Integer, List<Integer>> a;
                try {
                    a = parseAssignment(zk.getData("/brokers/topics/" + t, true, null));
                } catch (KeeperException.NoNodeException e) {
                    continue;
                }
                assignments.put(t, a);
                onNewPartitionCreation(t, a);
            }
        }

        void onPartitionModification(String topic) throws Exception {
            if (!isController || !assignments.containsKey(topic)) return;
            Map<Integer, List<Integer>> a;
            try {
                a = parseAssignment(zk.getData("/brokers/topics/" + topic, true, null));
            } catch (KeeperException.NoNodeException e) {
                return;
            }
            Map<Integer, List<Integer>> known = assignments.get(topic);
            Map<Integer, List<Integer>> added = new TreeMap<>();
            for (Map.Entry<Integer, List<Integer>> e : a.entrySet()) {
                if (!known.containsKey(e.getKey())) added.put(e.getKey(), e.getValue());
            }
            known.putAll(a);
            if (!added.isEmpty()) onNewPartitionCreation(topic, added);
        }

        void onNewPartitionCreation(String topic, Map<Integer, List<Integer>> parts) throws Exception {
            // createTopicPartitions, createTopicPartition, then the states, pipelined
            fencedCreateIgnoreExists("/brokers/topics/" + topic + "/partitions", null);
            for (int p : parts.keySet()) {
                fencedCreateIgnoreExists("/brokers/topics/" + topic + "/partitions/" + p, null);
            }
            List<Op> ops = new ArrayList<>();
            List<ObjectNode> payloads = new ArrayList<>();
            for (Map.Entry<Integer, List<Integer>> e : parts.entrySet()) {
                List<Integer> isr = new ArrayList<>();
                for (int b : e.getValue()) if (live.containsKey(b)) isr.add(b);
                int leader = isr.isEmpty() ? -1 : isr.get(0);
                ObjectNode s = statePayload(ctlEpoch, leader, 0, isr);
                payloads.add(s);
                ops.add(createOp(statePath(topic, e.getKey()), json(s)));
            }
            List<Object> res = pipelinedFenced(ops);
            List<Integer> created = new ArrayList<>();
            int i = 0;
            for (int p : parts.keySet()) {
                Object r = res.get(i);
                if (r instanceof OpResult.CreateResult) {
                    states.put(topic + "/" + p, payloads.get(i));
                    stateVersions.put(topic + "/" + p, 0);
                    created.add(p);
                } else {
                    ev("error", "broker", id, "message", "create state " + topic + "/" + p + ": " + r);
                }
                i++;
            }
            ev("partitions-created", "broker", id, "topic", topic, "partitions", created, "epoch", ctlEpoch);
        }

        void onTopicDeletion() throws Exception {
            if (!isController) return;
            List<String> ts = zk.getChildren("/admin/delete_topics", true, null);
            Collections.sort(ts);
            for (String t : ts) {
                if (!assignments.containsKey(t)) {
                    fencedDelete("/admin/delete_topics/" + t);
                    ev("topic-deletion-ignored", "broker", id, "topic", t);
                    continue;
                }
                fencedDeleteRecursive("/brokers/topics/" + t);
                fencedDelete("/config/topics/" + t);
                fencedDelete("/admin/delete_topics/" + t);
                assignments.remove(t);
                states.keySet().removeIf(k -> k.startsWith(t + "/"));
                stateVersions.keySet().removeIf(k -> k.startsWith(t + "/"));
                ev("topic-deleted", "broker", id, "topic", t);
            }
        }

        void onReassignment() throws Exception {
            if (!isController) return;
            String path = "/admin/reassign_partitions";
            if (zk.exists(path, true) == null) return;
            JsonNode r = parse(zk.getData(path, true, null));
            List<String> done = new ArrayList<>();
            for (JsonNode p : r.get("partitions")) {
                String t = p.get("topic").asText();
                int part = p.get("partition").asInt();
                List<Integer> target = intList(p.get("replicas"));
                Map<Integer, List<Integer>> a = assignments.get(t);
                if (a == null || !a.containsKey(part)) continue;
                a.put(part, target);
                fenced(Op.setData("/brokers/topics/" + t, json(topicPayload(v28, a)), -1));
                String key = t + "/" + part;
                ObjectNode s = states.get(key);
                if (s != null) {
                    int leader = s.get("leader").asInt();
                    List<Integer> isr = new ArrayList<>();
                    for (int b : target) if (live.containsKey(b)) isr.add(b);
                    if (!target.contains(leader) || !live.containsKey(leader)) {
                        leader = isr.isEmpty() ? -1 : isr.get(0);
                    }
                    ObjectNode ns = statePayload(ctlEpoch, leader, s.get("leader_epoch").asInt() + 1, isr);
                    OpResult res = fenced(Op.setData(statePath(t, part), json(ns), stateVersions.get(key)));
                    states.put(key, ns);
                    stateVersions.put(key, ((OpResult.SetDataResult) res).getStat().getVersion());
                }
                done.add(key);
            }
            fencedDelete(path);
            zk.exists(path, true); // armed again for the next reassignment
            ev("reassignment-done", "broker", id, "partitions", done);
        }

        // --------------------------------------------- every broker: configs

        void processConfigChanges() throws Exception {
            List<String> cs = zk.getChildren("/config/changes", true, null);
            Collections.sort(cs);
            for (String c : cs) {
                if (!c.startsWith("config_change_")) continue;
                long seq = Long.parseLong(c.substring("config_change_".length()));
                if (seq <= lastConfigChange) continue;
                lastConfigChange = seq;
                JsonNode n;
                try {
                    n = parse(zk.getData("/config/changes/" + c, false, null));
                } catch (KeeperException.NoNodeException e) {
                    continue;
                }
                String entity = n.get("entity_path").asText();
                JsonNode cfg;
                try {
                    cfg = parse(zk.getData("/config/" + entity, false, null)).get("config");
                } catch (KeeperException.NoNodeException e) {
                    cfg = M.createObjectNode();
                }
                ev("config-change", "broker", id, "notification", c, "entity_path", entity, "config", cfg);
            }
        }

        // ------------------------------------------------------------ expiry

        void onSessionExpired() throws Exception {
            long old = session;
            ev("expired", "broker", id, "session", old);
            if (isController) resign();
            activeController = -1;
            try {
                zk.close();
            } catch (InterruptedException e) {
                // ignore
            }
            openSession();
            if (v28) initFeatureListener();
            brokerEpoch = register();
            processConfigChanges();
            elect();
            ev("reregistered", "broker", id, "old_session", old, "session", session,
                    "broker_epoch", brokerEpoch);
        }

        ObjectNode state() {
            return obj("broker", id, "session", session, "broker_epoch", brokerEpoch,
                    "controller", isController, "active_controller", activeController,
                    "controller_epoch", ctlEpoch, "controller_epoch_zk_version", ctlEpochZkVersion,
                    "live", new ArrayList<>(live.keySet()), "topics", new ArrayList<>(assignments.keySet()),
                    "states", states, "state_versions", stateVersions, "cluster_id", clusterId);
        }

        void stop() {
            stopped = true;
            for (Proxy p : proxies) {
                try {
                    p.ss.close();
                } catch (IOException e) {
                    // ignore
                }
                p.cut();
            }
            try {
                if (zk != null) zk.close();
            } catch (InterruptedException e) {
                // ignore
            }
        }
    }

    // ---------------------------------------------------------------- admin

    static ObjectNode admin(boolean v28, String[] a) throws Exception {
        ZooKeeper zk = connect(servers + chroot, 30000, null);
        try {
            String cmd = a[0];
            switch (cmd) {
                case "create":
                    return adminCreate(zk, v28, a[1], Integer.parseInt(a[2]), Integer.parseInt(a[3]));
                case "list": {
                    List<String> ts = zk.getChildren("/brokers/topics", false);
                    List<String> del = zk.getChildren("/admin/delete_topics", false);
                    Collections.sort(ts);
                    Collections.sort(del);
                    return obj("topics", ts, "marked_for_deletion", del);
                }
                case "describe":
                    return adminDescribe(zk, a[1]);
                case "alter":
                    return adminAlter(zk, v28, a[1], Integer.parseInt(a[2]));
                case "add-config":
                case "delete-config":
                    return adminConfig(zk, v28, cmd.equals("add-config"), a[1], a[2]);
                case "delete": {
                    if (zk.exists("/brokers/topics/" + a[1], false) == null) {
                        return obj("ok", false, "error", "Topic '" + a[1] + "' does not exist");
                    }
                    try {
                        createRecursive(zk, v28, "/admin/delete_topics/" + a[1], null, false);
                    } catch (KeeperException.NodeExistsException e) {
                        return obj("ok", false, "error", "already marked for deletion");
                    }
                    return obj("marked", "/admin/delete_topics/" + a[1]);
                }
                case "reassign": {
                    List<Integer> rs = new ArrayList<>();
                    for (String s : a[3].split(",")) rs.add(Integer.parseInt(s));
                    ObjectNode body = obj("version", 1, "partitions",
                            List.of(obj("topic", a[1], "partition", Integer.parseInt(a[2]), "replicas", rs)));
                    try {
                        zk.create("/admin/reassign_partitions", json(body), acls("/admin/reassign_partitions", v28),
                                CreateMode.PERSISTENT);
                    } catch (KeeperException.NodeExistsException e) {
                        return obj("ok", false, "error", "reassignment in progress");
                    }
                    return obj("created", "/admin/reassign_partitions", "data", body);
                }
                default:
                    throw new IllegalArgumentException("admin " + cmd);
            }
        } finally {
            zk.close();
        }
    }

    static ObjectNode adminCreate(ZooKeeper zk, boolean v28, String topic, int parts, int rf) throws Exception {
        if (zk.getChildren("/brokers/topics", false).contains(topic)) {
            return obj("ok", false, "error", "Topic '" + topic + "' already exists.");
        }
        List<String> ids = zk.getChildren("/brokers/ids", false);
        List<Integer> brokers = new ArrayList<>();
        for (String s : ids) {
            zk.getData("/brokers/ids/" + s, false, null); // broker metadata (rack)
            brokers.add(Integer.parseInt(s));
        }
        Collections.sort(brokers);
        if (rf > brokers.size()) {
            return obj("ok", false, "error", "Replication factor: " + rf + " larger than available brokers: "
                    + brokers.size() + ".");
        }
        Map<Integer, List<Integer>> a = new TreeMap<>();
        for (int p = 0; p < parts; p++) a.put(p, replicas(brokers, p, rf));
        byte[] cfg = json(obj("version", 1, "config", M.createObjectNode()));
        try {
            zk.setData("/config/topics/" + topic, cfg, -1);
        } catch (KeeperException.NoNodeException e) {
            createRecursive(zk, v28, "/config/topics/" + topic, cfg, false);
        }
        createRecursive(zk, v28, "/brokers/topics/" + topic, json(topicPayload(v28, a)), false);
        return obj("topic", topic, "assignment", a);
    }

    static List<Integer> replicas(List<Integer> brokers, int p, int rf) {
        List<Integer> r = new ArrayList<>();
        for (int i = 0; i < rf; i++) r.add(brokers.get((p + i) % brokers.size()));
        return r;
    }

    static ObjectNode adminDescribe(ZooKeeper zk, String topic) throws Exception {
        Map<Integer, List<Integer>> a = parseAssignment(zk.getData("/brokers/topics/" + topic, false, null));
        ObjectNode parts = M.createObjectNode();
        for (Map.Entry<Integer, List<Integer>> e : a.entrySet()) {
            ObjectNode p = obj("replicas", e.getValue());
            try {
                JsonNode s = parse(zk.getData("/brokers/topics/" + topic + "/partitions/" + e.getKey() + "/state",
                        false, null));
                p.set("leader", s.get("leader"));
                p.set("isr", s.get("isr"));
                p.set("leader_epoch", s.get("leader_epoch"));
            } catch (KeeperException.NoNodeException x) {
                p.put("leader", "none");
            }
            parts.set(Integer.toString(e.getKey()), p);
        }
        JsonNode cfg;
        try {
            cfg = parse(zk.getData("/config/topics/" + topic, false, null)).get("config");
        } catch (KeeperException.NoNodeException x) {
            cfg = M.createObjectNode();
        }
        return obj("topic", topic, "partitions", parts, "config", cfg);
    }

    static ObjectNode adminAlter(ZooKeeper zk, boolean v28, String topic, int parts) throws Exception {
        Map<Integer, List<Integer>> a = parseAssignment(zk.getData("/brokers/topics/" + topic, false, null));
        if (parts <= a.size()) {
            return obj("ok", false, "error", "The number of partitions for a topic can only be increased.");
        }
        List<String> ids = zk.getChildren("/brokers/ids", false);
        List<Integer> brokers = new ArrayList<>();
        for (String s : ids) brokers.add(Integer.parseInt(s));
        Collections.sort(brokers);
        int rf = a.get(0).size();
        for (int p = a.size(); p < parts; p++) a.put(p, replicas(brokers, p, rf));
        Stat st = zk.setData("/brokers/topics/" + topic, json(topicPayload(v28, a)), -1);
        return obj("topic", topic, "assignment", a, "version", st.getVersion());
    }

    static ObjectNode adminConfig(ZooKeeper zk, boolean v28, boolean add, String entity, String spec)
            throws Exception {
        // a topic name, or <entity type>/<name> (kafka-configs --entity-type users ...)
        String entityPath = entity.contains("/") ? entity : "topics/" + entity;
        String path = "/config/" + entityPath;
        ObjectNode cfg;
        try {
            cfg = (ObjectNode) parse(zk.getData(path, false, null)).get("config");
        } catch (KeeperException.NoNodeException e) {
            cfg = M.createObjectNode();
        }
        for (String kv : spec.split(",")) {
            if (add) {
                String[] p = kv.split("=", 2);
                cfg.put(p[0], p[1]);
            } else {
                cfg.remove(kv);
            }
        }
        byte[] data = json(obj("version", 1, "config", cfg));
        try {
            zk.setData(path, data, -1);
        } catch (KeeperException.NoNodeException e) {
            createRecursive(zk, v28, path, data, false);
        }
        createRecursive(zk, v28, "/config/changes", null, true);
        String name = zk.create("/config/changes/config_change_",
                json(obj("version", 2, "entity_path", entityPath)),
                acls("/config/changes/config_change_", v28), CreateMode.PERSISTENT_SEQUENTIAL);
        return obj("config", cfg, "notification", name);
    }

    // ----------------------------------------------------------------- main

    public static void main(String[] args) throws Exception {
        servers = args[0];
        if (args.length > 1) chroot = args[1];
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        ev("ready", "servers", servers, "chroot", chroot);
        String line;
        while ((line = in.readLine()) != null) {
            line = line.trim();
            if (line.isEmpty()) continue;
            String[] w = line.split("\\s+");
            long seq = Long.parseLong(w[0]);
            ObjectNode reply;
            try {
                reply = handle(w);
                if (reply == null) break;
            } catch (Throwable e) {
                Throwable c = e instanceof java.util.concurrent.ExecutionException ? e.getCause() : e;
                reply = obj("ok", false, "error", String.valueOf(c));
            }
            ObjectNode out = obj("reply", seq);
            if (!reply.has("ok")) out.put("ok", true);
            out.setAll(reply);
            emit(out);
        }
        for (Broker b : BROKERS.values()) b.stop();
        emit(obj("ev", "bye"));
        System.exit(0);
    }

    static ObjectNode handle(String[] w) throws Exception {
        String cmd = w[1];
        switch (cmd) {
            case "start": {
                int id = Integer.parseInt(w[2]);
                boolean v28 = w[3].equals("2.8");
                int timeout = Integer.parseInt(w[4]);
                boolean proxied = w.length > 5 && w[5].equals("proxy");
                Broker b = new Broker(id, v28, timeout, proxied);
                Broker prev = BROKERS.putIfAbsent(id, b);
                if (prev != null) {
                    // a second broker with the same id: its start-up must fail
                    try {
                        return b.call(b::startup);
                    } finally {
                        b.stop();
                    }
                }
                try {
                    return b.call(b::startup);
                } catch (Exception e) {
                    BROKERS.remove(id);
                    b.stop();
                    throw e;
                }
            }
            case "register": {
                Broker b = broker(w[2]);
                return b.call(() -> obj("broker_epoch", b.register(), "session", b.session));
            }
            case "stop": {
                Broker b = BROKERS.remove(Integer.parseInt(w[2]));
                if (b == null) return obj("ok", false, "error", "no broker " + w[2]);
                long s = b.session;
                b.stop();
                return obj("broker", b.id, "session", s);
            }
            case "partition":
                for (Proxy p : broker(w[2]).proxies) p.cut();
                return obj("broker", Integer.parseInt(w[2]));
            case "heal":
                for (Proxy p : broker(w[2]).proxies) p.heal();
                return obj("broker", Integer.parseInt(w[2]));
            case "state": {
                Broker b = broker(w[2]);
                return b.call(b::state);
            }
            case "admin": {
                String[] rest = new String[w.length - 3];
                System.arraycopy(w, 3, rest, 0, rest.length);
                return admin(w[2].equals("2.8"), rest);
            }
            case "quit":
                return null;
            default:
                throw new IllegalArgumentException("unknown command " + cmd);
        }
    }

    static Broker broker(String id) {
        Broker b = BROKERS.get(Integer.parseInt(id));
        if (b == null) throw new IllegalArgumentException("no broker " + id);
        return b;
    }
}
