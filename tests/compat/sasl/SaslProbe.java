// One ZooKeeper Java client session for tests/compat/test_sasl.py: connects to argv[0],
// waits for the outcome of its SASL login (SaslAuthenticated or AuthFailed; SyncConnected
// when SASL is off), runs the commands argv[1..] and prints one line per command, then the
// connection-state events it saw (each once, in order of first appearance).
//
// The JAAS login comes from the standard properties: -Djava.security.auth.login.config=FILE
// and -Dzookeeper.sasl.clientconfig=SECTION (a DigestLoginModule section with username and
// password); -Dzookeeper.sasl.client=false connects without SASL.
//
// Commands (one argv word each, fields separated by spaces):
//   create PATH SCHEME:ID:PERMS [DATA]   get PATH   getAcl PATH   setAcl PATH SCHEME:ID:PERMS
//   exists PATH   delete PATH   whoami   sleep MS
// A command's line is `COMMAND -> RESULT`, RESULT being its value or the KeeperException code.

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Id;
import org.apache.zookeeper.data.Stat;

public class SaslProbe {
    public static void main(String[] args) throws Exception {
        List<String> events = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch ready = new CountDownLatch(1);
        boolean sasl = !"false".equals(System.getProperty("zookeeper.sasl.client"));
        Watcher watcher = e -> {
            if (e.getType() != Watcher.Event.EventType.None) {
                return;
            }
            Watcher.Event.KeeperState s = e.getState();
            synchronized (events) {
                if (!events.contains(s.toString())) {
                    events.add(s.toString());
                }
            }
            boolean done = sasl
                ? s == Watcher.Event.KeeperState.SaslAuthenticated
                    || s == Watcher.Event.KeeperState.AuthFailed
                : s == Watcher.Event.KeeperState.SyncConnected;
            if (done) {
                ready.countDown();
            }
        };
        ZooKeeper zk = new ZooKeeper(args[0], 6000, watcher);
        if (!ready.await(20, TimeUnit.SECONDS)) {
            System.out.println("no login outcome within 20 s");
        }
        for (int i = 1; i < args.length; i++) {
            String out;
            try {
                out = run(zk, args[i].split(" "));
            } catch (KeeperException e) {
                out = e.code().toString();
            }
            System.out.println(args[i] + " -> " + out);
        }
        Thread.sleep(300);
        synchronized (events) {
            System.out.println("events " + events);
        }
        zk.close();
    }

    static String run(ZooKeeper zk, String[] c) throws Exception {
        switch (c[0]) {
            case "create":
                byte[] data = c.length > 3 ? c[3].getBytes("UTF-8") : new byte[0];
                return zk.create(c[1], data, acl(c[2]), CreateMode.PERSISTENT);
            case "get":
                return new String(zk.getData(c[1], false, null), "UTF-8");
            case "getAcl":
                StringBuilder sb = new StringBuilder();
                for (ACL a : zk.getACL(c[1], new Stat())) {
                    sb.append(a.getId().getScheme()).append(':').append(a.getId().getId())
                        .append(':').append(a.getPerms()).append(' ');
                }
                return sb.toString().trim();
            case "setAcl":
                zk.setACL(c[1], acl(c[2]), -1);
                return "ok";
            case "exists":
                return String.valueOf(zk.exists(c[1], false) != null);
            case "delete":
                zk.delete(c[1], -1);
                return "ok";
            case "whoami":
                List<ClientInfo> infos = zk.whoAmI();
                if (infos == null) {
                    return "null";
                }
                List<String> ids = new ArrayList<>();
                for (ClientInfo ci : infos) {
                    ids.add(ci.getAuthScheme() + ":" + ci.getUser());
                }
                Collections.sort(ids);
                return ids.toString();
            case "sleep":
                Thread.sleep(Long.parseLong(c[1]));
                return "ok";
            default:
                throw new IllegalArgumentException("unknown command " + c[0]);
        }
    }

    static List<ACL> acl(String spec) {
        String[] p = spec.split(":", 3);
        return Collections.singletonList(new ACL(Integer.parseInt(p[2]), new Id(p[0], p[1])));
    }
}
