package org.adaptiverag.esnode;

import java.util.List;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.node.MockNode;
import org.elasticsearch.node.Node;
import org.elasticsearch.transport.netty4.Netty4Plugin;

/**
 * Runs one real Elasticsearch node in this JVM until the process is told to stop (SIGTERM).
 *
 * <p>Arguments are {@code key=value} node settings (path.home, http.port, discovery...), passed
 * through unchanged so that {@code es_node.py} decides everything. Going through {@link MockNode}
 * rather than the distribution's bootstrap skips the launcher's refusal to run as root (CI runs as
 * root) and the production bootstrap checks, which apply only to non-loopback nodes anyway.
 */
public final class EsNode {

    private EsNode() {}

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got [" + arg + "]");
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Node node = new MockNode(builder.build(), List.of(Netty4Plugin.class, EnglishAnalysisPlugin.class), true, () -> {});
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            }
        }, "es-node-shutdown"));
        node.start();
        System.out.println("es-node started");
        System.out.flush();
        Thread.currentThread().join();
    }
}
