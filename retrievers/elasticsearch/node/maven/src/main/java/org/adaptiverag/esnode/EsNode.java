package org.adaptiverag.esnode;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.TimeUnit;

import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.env.Environment;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.plugins.PluginsLoader;

/**
 * Runs one real Elasticsearch node in this JVM until the process is told to stop (SIGTERM).
 *
 * <p>Arguments are {@code key=value} node settings (path.home, http.port, discovery...), passed
 * through unchanged so that {@code node/launcher.py} decides everything; the system property
 * {@code esnode.modules} names the built modules folder ({@code target/modules}), which becomes
 * {@code path.home/modules}.
 *
 * <p>The node is the production {@link Node}, and its modules are loaded by the production plugin
 * loader from their folders. Only the distribution's launcher is skipped: that is what refuses to run
 * as root (CI runs as root) and installs the entitlement agent. Bootstrap checks still run, and pass
 * because the node binds to loopback only.
 */
public final class EsNode {

    private EsNode() {}

    public static void main(String[] args) throws Exception {
        try {
            run(args);
        } catch (Throwable t) {
            // A node that failed to start leaves non-daemon threads behind; exit so the caller sees it.
            t.printStackTrace();
            System.exit(1);
        }
        Thread.currentThread().join();
    }

    private static void run(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got [" + arg + "]");
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();
        LogConfigurator.configureESLogging();
        LogConfigurator.configureWithoutConfig(settings);

        Environment env = InternalSettingsPreparer.prepareEnvironment(settings, Map.of(), null, () -> "node");
        linkModules(env.modulesDir(), Path.of(System.getProperty("esnode.modules", "target/modules")).toAbsolutePath());
        Files.createDirectories(env.pluginsDir());
        PluginsLoader loader = PluginsLoader.createPluginsLoader(
            PluginsLoader.loadModulesBundles(env.modulesDir(), false),
            PluginsLoader.loadPluginsBundles(env.pluginsDir(), false),
            Map.of(),
            false // no server module layer: the server is on the classpath, not a named module
        );
        Node node = new Node(env, loader);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(30, TimeUnit.SECONDS);
            } catch (IOException | InterruptedException e) {
                e.printStackTrace();
            }
        }, "es-node-shutdown"));
        node.start();
        System.out.println("es-node started");
        System.out.flush();
    }

    private static void linkModules(Path modulesDir, Path built) throws IOException {
        if (!Files.isDirectory(built)) {
            throw new IllegalStateException("modules folder [" + built + "] not found: run mvn package first");
        }
        if (!Files.exists(modulesDir)) {
            Files.createDirectories(modulesDir.getParent());
            Files.createSymbolicLink(modulesDir, built);
        }
    }
}
