package dev.auditline.testservices;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import org.opensearch.analysis.common.CommonAnalysisPlugin;
import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.http.HttpServerTransport;
import org.opensearch.index.reindex.ReindexPlugin;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.painless.PainlessPlugin;
import org.opensearch.plugins.Plugin;
import org.opensearch.transport.Netty4Plugin;

/**
 * A single-node OpenSearch for tests, started from jars on the classpath.
 *
 * <p>Usage: {@code OpenSearchLauncher HOME PORT_FILE [HTTP_PORT]}. The node keeps its data,
 * logs and config under HOME, listens on loopback only, and writes the HTTP port it bound
 * to PORT_FILE (atomically, once it listens). It runs until the process is terminated.
 *
 * <p>The distribution's Bootstrap (security manager, bootstrap checks, plugin directory)
 * is deliberately not used: the plugins come from the classpath through Node's protected
 * constructor, which is what lets a test harness start OpenSearch from Maven Central
 * artifacts alone.
 */
public final class OpenSearchLauncher {
    private static final String NODE_NAME = "auditline-test";

    private static final String LOG4J =
            "status = error\n"
                    + "appender.console.type = Console\n"
                    + "appender.console.name = console\n"
                    + "appender.console.layout.type = PatternLayout\n"
                    + "appender.console.layout.pattern = [%d{ISO8601}][%-5p][%c{1.}] %m%n\n"
                    + "rootLogger.level = warn\n"
                    + "rootLogger.appenderRef.console.ref = console\n";

    /** Node's constructor that takes classpath plugins is protected. */
    private static final class TestNode extends Node {
        TestNode(Environment environment, Collection<Class<? extends Plugin>> plugins) {
            super(environment, plugins, true);
        }
    }

    private OpenSearchLauncher() {}

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            System.err.println("usage: OpenSearchLauncher HOME PORT_FILE [HTTP_PORT]");
            System.exit(2);
        }
        Path home = Paths.get(args[0]).toAbsolutePath();
        Path portFile = Paths.get(args[1]).toAbsolutePath();
        String httpPort = args.length > 2 ? args[2] : "0";
        Path config = home.resolve("config");
        Files.createDirectories(config);
        Files.createDirectories(home.resolve("data"));
        Files.createDirectories(home.resolve("logs"));
        Files.write(config.resolve("log4j2.properties"), LOG4J.getBytes(StandardCharsets.UTF_8));

        Settings settings =
                Settings.builder()
                        .put("path.home", home.toString())
                        .put("path.data", home.resolve("data").toString())
                        .put("path.logs", home.resolve("logs").toString())
                        .put("cluster.name", NODE_NAME)
                        .put("node.name", NODE_NAME)
                        .put("network.host", "127.0.0.1")
                        .put("http.port", httpPort)
                        .put("transport.port", "0")
                        .put("discovery.type", "single-node")
                        // Test machines have little free disk; the watermarks would make
                        // indices read-only and searches hang on yellow.
                        .put("cluster.routing.allocation.disk.threshold_enabled", false)
                        .build();
        LogConfigurator.registerErrorListener();
        Environment environment =
                InternalSettingsPreparer.prepareEnvironment(
                        settings, Collections.emptyMap(), config, () -> NODE_NAME);
        LogConfigurator.setNodeName(NODE_NAME);
        LogConfigurator.configure(environment);

        List<Class<? extends Plugin>> plugins =
                List.of(
                        Netty4Plugin.class,
                        CommonAnalysisPlugin.class,
                        PainlessPlugin.class,
                        ReindexPlugin.class);
        Node node = new TestNode(environment, plugins);
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime()
                .addShutdownHook(
                        new Thread(
                                () -> {
                                    try {
                                        node.close();
                                    } catch (IOException e) {
                                        e.printStackTrace();
                                    } finally {
                                        stopped.countDown();
                                    }
                                }));
        node.start();
        int port =
                node.injector()
                        .getInstance(HttpServerTransport.class)
                        .boundAddress()
                        .publishAddress()
                        .getPort();
        Path partial = portFile.resolveSibling(portFile.getFileName() + ".tmp");
        Files.write(partial, Integer.toString(port).getBytes(StandardCharsets.UTF_8));
        Files.move(partial, portFile, StandardCopyOption.ATOMIC_MOVE);
        stopped.await();
    }
}
